"""Typed settings, read once from the environment (prefix ``RANKLAB_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "ranklab-development-secret-change-me"  # noqa: S105 - refused in production
DEV_KEY_WARNING = (
    "RANKLAB_SECRET_KEY is the published development key: anyone can forge a session cookie or an API token for "
    "any account, admins included. Set RANKLAB_SECRET_KEY to a long random value before anyone else can reach this "
    "server."
)
DEV_KEY_LOG_WARNING = (  # worded so the log's credential redaction leaves it readable
    "DEVELOPMENT SIGNING KEY IN USE: anyone can forge a login cookie or an API credential for any account, admins "
    "included. Set the RANKLAB_SECRET_KEY setting to a long random value before anyone else can reach this server."
)
ROOT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every ranklab setting; documented in the README."""

    model_config = SettingsConfigDict(
        env_prefix="RANKLAB_",
        env_file=".env",
        extra="ignore",
        use_attribute_docstrings=True,
        hide_input_in_errors=True,  # a refused setting (a short secret key above all) is never printed
    )

    env: Literal["development", "test", "production"] = "development"
    """Deployment environment; `production` refuses the development secret key."""
    data_dir: Path = ROOT_DIR / "data"
    """Folder for the SQLite database, models and checkpoints (created on first use)."""
    database_url: str = ""
    """SQLAlchemy URL; empty means `sqlite:///<data_dir>/ranklab.db`."""
    sqlite_busy_timeout_s: float = Field(default=30.0, ge=0, le=600)
    """SQLite only: how long a write waits for another one to finish before the request answers 503."""
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    """Signs session cookies, CSRF tokens and API tokens."""
    session_max_age_s: int = 14 * 24 * 3600
    """Browser session lifetime in seconds."""
    token_ttl_s: int = 24 * 3600
    """Lifetime of bearer API tokens in seconds."""
    cookie_secure: bool | None = None
    """Force the Secure cookie flag; default: set when the request came over HTTPS."""
    login_max_failures: int = Field(default=5, ge=1)
    """Failed logins allowed per username from one client address within the window (four times as many per
    address over all usernames), so nobody can lock someone else out from elsewhere."""
    login_window_s: int = Field(default=900, ge=1)
    """Rate-limit window for failed logins, in seconds."""
    log_level: str = "INFO"
    """Root log level."""
    lease_minutes: int = Field(default=30, ge=1)
    """How long a labeler holds an assignment before it returns to the pool."""
    revision_minutes: int = Field(default=10, ge=0, le=24 * 60)
    """How long after submitting a labeler may still correct a ranking (0: rankings are final once sent)."""
    task_kind_order: list[str] = ["gold", "eval", "production"]
    """Order of preference between task kinds when picking a labeler's next task."""
    screening_set_size: int = Field(default=10, ge=1)
    """How many screening tasks a new labeler ranks before the screening gate decides."""
    screening_demonstrations: int = Field(default=0, ge=0, le=100)
    """How many screening demonstration tasks (when researchers created any) a new labeler also writes; the gate
    then waits until a researcher has reviewed them, and passes only if every one was accepted."""
    screening_cutoff: float = Field(default=0.75, ge=0, le=1)
    """Ranking agreement with researchers needed to pass screening (and to stay unflagged on hidden gold)."""
    flag_cutoff: float = Field(default=0.75, ge=0, le=1)
    """Flag agreement with researchers (share of completions with the same flag set) needed to pass screening."""
    hidden_gold_share: float = Field(default=0.05, ge=0, le=1)
    """Share of an active labeler's tasks that are hidden gold checks."""
    gold_window: int = Field(default=20, ge=1)
    """Hidden gold rankings in the rolling agreement window."""
    auto_pause: bool = False
    """Pause a labeler whose rolling gold agreement falls under the cutoff (otherwise only flag them)."""
    adaptive_overlap_max: int = Field(default=5, ge=1)
    """Largest overlap adaptive overlap may raise a task to."""
    adaptive_overlap_threshold: float = Field(default=0.6, ge=0, le=1)
    """Inter-labeler agreement under which a fully ranked task gets one more labeler."""
    worker_heartbeat_s: float = Field(default=10.0, gt=0)
    """How often a worker refreshes the heartbeat of the job it runs, in seconds."""
    worker_stale_after_s: float = Field(default=120.0, gt=0)
    """A running job whose heartbeat is older than this returns to the queue (its worker is presumed dead)."""
    worker_poll_s: float = Field(default=2.0, gt=0)
    """How long an idle worker sleeps between looks at the queue, in seconds."""
    worker_forget_after_s: float = Field(default=86400.0, gt=0)
    """The workers table forgets a stopped or vanished worker once it has not been seen for this long, in seconds."""
    job_max_attempts: int = Field(default=3, ge=1)
    """Claims a job gets before a stale heartbeat fails it instead of re-queueing it."""
    scheduler_lease_s: float = Field(default=60.0, gt=0)
    """Lifetime of the scheduler lease that lets one worker at a time evaluate schedules, in seconds."""
    schedule_min_interval_s: float = Field(default=60.0, ge=1)
    """A cron schedule may not fire more often than this, in seconds (a cron with a seconds field is refused)."""
    export_keep: int = Field(default=20, ge=1)
    """Export files kept: the newest this many; older ones go after each export job and with `ranklab storage`."""
    export_max_age_days: float = Field(default=30.0, ge=0)
    """Export files older than this many days are deleted too (0: no age limit)."""
    keep_model_versions: int = Field(default=3, ge=1)
    """Per kind, the newest model versions no round, schedule or queued job uses whose files `ranklab storage --apply`
    keeps; older ones lose their files (the registry rows stay)."""
    cpu_bf16: bool = False
    """Workers and measurements on a CPU run matrix products in bf16 autocast (weights and optimizers stay float32,
    as on CUDA): about 2x faster training on CPUs with AMX or AVX512-BF16 units (`bench/cpu_bf16.py`), slower on
    others."""
    min_free_disk_gb: float = Field(default=5.0, ge=0)
    """A worker does not start a job while the data folder's disk has less free space than this, in GB (0: no check)."""
    metrics_token: SecretStr | None = None
    """Bearer token a Prometheus server sends to scrape `/metrics` (admins may always read it); unset: admins only."""

    @model_validator(mode="after")
    def _check(self) -> Settings:  # messages never quote the key
        if self.env == "production" and self.secret_key.get_secret_value() == DEV_SECRET_KEY:
            raise ValueError("RANKLAB_SECRET_KEY must be set to a private value when RANKLAB_ENV=production")
        if len(self.secret_key.get_secret_value()) < 16:
            raise ValueError("RANKLAB_SECRET_KEY must be at least 16 characters long")
        return self

    @property
    def uses_development_key(self) -> bool:
        """True when the secret key is the published development one (anyone can sign an admin's token)."""
        return self.secret_key.get_secret_value() == DEV_SECRET_KEY

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'ranklab.db'}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return Settings()
