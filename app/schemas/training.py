"""Params of the training job kinds (torch-free: the web side validates them, the worker trains with them)."""

from __future__ import annotations

from pydantic import Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import ModelKind, ModelVersion
from app.schemas.fields import Id
from app.schemas.params import MAX_MEMORY_GB_HELP, JobParams, LoraParams, RankingFilter, check_files_kept


class TrainRewardParams(RankingFilter):
    """Train a reward model on the accumulated rankings (InstructGPT: every ranking of K outputs is one element)."""

    active_only: bool = True
    """Only rankings by labelers whose account is active (researchers' rankings are always kept)."""

    sft_version: Id | None = None
    """SFT ModelVersion whose backbone the reward model starts from; default: the newest SFT version."""
    weight_by_agreement: bool = False
    """Weight each labeler's rankings by their agreement with researchers (researchers weigh 1)."""
    heldout_labeler_share: float = Field(default=0.2, ge=0.0, le=0.5)
    """Share of labelers (by pseudonym) whose rankings are kept out of training to measure generalisation to
    new labelers; none are held out when fewer than 5 labelers ranked."""
    epochs: int = Field(default=1, ge=1, le=20)
    """Passes over the training rankings (InstructGPT trained one epoch: more overfits)."""
    learning_rate: float = Field(default=9e-6, gt=0.0, le=1e-2)
    """Peak AdamW learning rate (InstructGPT: 9e-6)."""
    batch_size: int = Field(default=8, ge=1, le=1024)
    """Tasks per micro-batch; every ranking of a task shares the forward passes of its outputs."""
    grad_accum_steps: int = Field(default=1, ge=1, le=1024)
    """Micro-batches per optimizer step."""
    warmup_ratio: float = Field(default=0.05, ge=0.0, le=0.5)
    """Share of the optimizer steps spent warming the learning rate up linearly; then cosine decay to 10%."""
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    """AdamW weight decay."""
    max_length: int = Field(default=512, ge=16, le=32768)
    """Most tokens of prompt + output; longer prompts are cut from the left."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    shared_prompt: bool = False
    """Encode each task's prompt once and let its K outputs attend to that one pass: the same rewards with fewer
    tokens (fastest with long prompts); not with gradient_checkpointing."""
    processes: int | None = Field(default=None, ge=1, le=64)
    """Processes to train on together under torchrun (DDP), one per GPU; default: every GPU of the worker (on a
    CPU worker 1; more runs gloo on CPU, for tests)."""
    checkpoint_every: int = Field(default=50, ge=1, le=100_000)
    """Optimizer steps between resumable checkpoints."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seed of the head's initialisation, the data order and the held-out labelers."""
    lora: LoraParams | None = None
    """Train LoRA adapters on the backbone (the score head stays fully trainable) instead of every weight; none:
    full fine-tuning."""
    max_memory_gb: float | None = Field(default=None, gt=0.0, le=1_000_000.0, description=MAX_MEMORY_GB_HELP)

    @model_validator(mode="after")
    def _compatible(self) -> TrainRewardParams:
        if self.shared_prompt and self.gradient_checkpointing:
            raise ValueError("shared_prompt and gradient_checkpointing cannot be combined; choose one")
        return self

    def check_references(self, session: Session) -> None:
        """The backbone is a registered SFT model (or one exists when none is named)."""
        if self.sft_version is not None:
            model = session.get(ModelVersion, self.sft_version)
            if model is None or model.kind != ModelKind.sft:
                raise InvalidInput(f"params.sft_version: no SFT model with id {self.sft_version}")
            check_files_kept(model, "sft_version")
        elif session.scalar(select(ModelVersion.id).where(ModelVersion.kind == ModelKind.sft).limit(1)) is None:
            raise InvalidInput(
                "no SFT model is registered to start the reward model from: run `ranklab demo` or "
                "`ranklab models add PATH --kind sft`"
            )


class TrainPolicyParams(JobParams):
    """Fine-tune a policy against a reward model with PPO (InstructGPT section 3.5), near its SFT ancestor."""

    policy_version: Id | None = None
    """SFT or policy version to start from; default: the newest SFT version."""
    reward_version: Id | None = None
    """Reward version that scores the episodes and initialises the value model; default: the newest."""
    max_prompts: int | None = Field(default=None, ge=1, le=1_000_000)
    """Use at most this many train-split prompts (lowest ids first); default: all of them."""
    steps: int = Field(default=64, ge=1, le=100_000)
    """PPO steps (a rollout of `batch_size` episodes, then `epochs` passes of `minibatches` updates)."""
    batch_size: int = Field(default=64, ge=1, le=65_536)
    """Episodes (prompt -> sampled response -> reward) per step."""
    minibatches: int = Field(default=4, ge=1, le=1024)
    """Optimizer steps per epoch over one batch."""
    epochs: int = Field(default=4, ge=1, le=64)
    """Passes over each batch."""
    learning_rate: float = Field(default=1e-5, gt=0.0, le=1e-2)
    """Adam learning rate of policy and value model, annealed linearly to 0."""
    kl_coef: float = Field(default=0.02, ge=0.0, le=10.0)
    """Beta of the per-token KL penalty to the SFT model (InstructGPT: 0.02)."""
    adaptive_kl: bool = False
    """Adapt beta so the KL per episode approaches `kl_target`."""
    kl_target: float = Field(default=6.0, gt=0.0, le=1000.0)
    """Target KL per episode (nats) of the adaptive controller."""
    response_length: int = Field(default=64, ge=1, le=4096)
    """Most tokens sampled per response."""
    temperature: float = Field(default=0.7, gt=0.0, le=5.0)
    """Sampling temperature (log-probs divide the logits by it too)."""
    no_eos_penalty: float | None = Field(default=None, ge=0.0, le=100.0)
    """Subtracted from the reward of responses cut off before EOS; default: none."""
    ptx_coef: float = Field(default=0.0, ge=0.0, le=1000.0)
    """PPO-ptx gamma: weight of a language-model loss on SFT-style text (the labelers' top-ranked outputs) mixed
    into every update, against the alignment tax; 0 turns it off."""
    cliprange: float = Field(default=0.2, gt=0.0, le=1.0)
    """PPO clip range of the probability ratio."""
    vf_coef: float = Field(default=0.1, ge=0.0, le=10.0)
    """Weight of the value loss."""
    processes: int | None = Field(default=None, ge=1, le=64)
    """Processes under torchrun (DDP), one per GPU, each sampling its share of the episodes; default: every GPU
    of the worker (on a CPU worker 1; more runs gloo on CPU, for tests)."""
    checkpoint_every: int = Field(default=10, ge=1, le=100_000)
    """PPO steps between resumable checkpoints."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seeds the prompt order, the sampling and the minibatches."""
    lora: LoraParams | None = None
    """Train LoRA adapters instead of every weight: the reference is the same model with its adapters off (one
    copy of the base), the value model gets adapters of its own; none: full fine-tuning."""
    max_memory_gb: float | None = Field(default=None, gt=0.0, le=1_000_000.0, description=MAX_MEMORY_GB_HELP)

    @model_validator(mode="after")
    def _divisible(self) -> TrainPolicyParams:
        if self.batch_size % self.minibatches:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of minibatches {self.minibatches}")
        return self

    def check_references(self, session: Session) -> None:
        """The start is an SFT or policy version, the scorer a reward version (or such versions exist)."""
        _check_version(session, self.policy_version, (ModelKind.sft, ModelKind.policy), "policy_version")
        _check_version(session, self.reward_version, (ModelKind.reward,), "reward_version")


def _check_version(session: Session, version: int | None, kinds: tuple[ModelKind, ...], name: str) -> None:
    """InvalidInput unless `version` is a model of one of `kinds` (or, when None, one such model exists)."""
    wanted = " or ".join(k.value for k in kinds)
    if version is not None:
        model = session.get(ModelVersion, version)
        if model is None or model.kind not in kinds:
            raise InvalidInput(f"params.{name}: no {wanted} model with id {version}")
        check_files_kept(model, name)
    elif session.scalar(select(ModelVersion.id).where(ModelVersion.kind.in_(kinds)).limit(1)) is None:
        hint = "train one first (train_reward)" if kinds == (ModelKind.reward,) else "run `ranklab demo`"
        raise InvalidInput(f"params.{name}: no {wanted} model is registered; {hint}")


class EvaluateParams(JobParams):
    """Compare a policy with a baseline (its SFT ancestor by default) on eval-split prompts."""

    policy_version: Id | None = None
    """The version to evaluate; default: the newest policy version."""
    baseline_version: Id | None = None
    """What it is compared with; default: the policy's SFT ancestor."""
    reward_version: Id | None = None
    """Reward model that scores both; default: the newest reward version (none registered: the evaluation measures
    KL, the alignment tax and, with human_eval, human win rates only)."""
    max_prompts: int = Field(default=64, ge=1, le=100_000)
    """Eval-split prompts used (lowest ids first; the validation split when no prompt is in the eval split)."""
    samples_per_prompt: int = Field(default=2, ge=1, le=16)
    """Responses sampled from each version per prompt."""
    response_length: int = Field(default=64, ge=1, le=4096)
    """Most tokens per response."""
    temperature: float = Field(default=0.7, gt=0.0, le=5.0)
    """Sampling temperature for both versions."""
    human_eval: bool = False
    """Also create eval ranking tasks: both versions' responses to a prompt shuffled together (labelers never see
    which is which); their rankings give a human win rate on the models page."""
    human_eval_overlap: int = Field(default=1, ge=1, le=100)
    """Labelers per eval ranking task."""
    max_ppl_texts: int = Field(default=128, ge=0, le=100_000)
    """Held-out SFT-style texts (top-ranked outputs of validation and eval prompts) whose perplexity under both
    versions measures the alignment tax; 0 skips it."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seeds the sampling."""

    @model_validator(mode="after")
    def _eval_task_size(self) -> EvaluateParams:
        if self.human_eval and not 2 <= self.samples_per_prompt <= 4:
            raise ValueError("human_eval puts both versions' samples in one task of 4 to 8: samples_per_prompt 2..4")
        return self

    def check_references(self, session: Session) -> None:
        """Every named version exists with the right kind (and a reward model exists)."""
        _check_version(session, self.policy_version, (ModelKind.policy, ModelKind.sft), "policy_version")
        if self.baseline_version is not None:
            _check_version(session, self.baseline_version, (ModelKind.policy, ModelKind.sft), "baseline_version")
        if self.reward_version is not None:  # without a reward model: KL, human evaluation and perplexity only
            _check_version(session, self.reward_version, (ModelKind.reward,), "reward_version")


check_version = _check_version
"""InvalidInput unless a version is a model of the given kinds (or, when None, one such model exists)."""
