from app.security import SessionData, Signer, csrf_matches, hash_password, verify_password


def test_hash_is_argon2_salted_and_verifies():
    h1, h2 = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert h1.startswith("$argon2id$")
    assert h1 != h2  # salted
    assert verify_password(h1, "s3cret-pass")
    assert not verify_password(h1, "s3cret-pasS")
    assert not verify_password("not-a-hash", "s3cret-pass")


def test_session_cookie_roundtrip_and_tamper():
    signer = Signer("k" * 32)
    data = SessionData(user_id=7)
    cookie = signer.dump_session(data)
    loaded = signer.load_session(cookie, max_age_s=60)
    assert loaded is not None and loaded.user_id == 7 and loaded.csrf == data.csrf
    assert signer.load_session(cookie[:-2] + "xx", max_age_s=60) is None
    assert Signer("other-key-" * 4).load_session(cookie, max_age_s=60) is None


def test_api_token_roundtrip_and_expiry():
    signer = Signer("k" * 32)
    token = signer.issue_token(42, 3)
    assert signer.read_token(token, max_age_s=60) == (42, 3)
    assert signer.read_token(token, max_age_s=-1) is None
    assert signer.read_token("garbage", max_age_s=60) is None


def test_csrf_matches():
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd")
    assert not csrf_matches("abc", None)
    assert not csrf_matches("abc", "")


def test_insecure_cookie_warning_only_for_a_secure_cookie_over_http_to_a_remote_host():
    from app.security import insecure_cookie_warning

    assert insecure_cookie_warning(cookie_secure=True, scheme="http", host="labels.example.org")
    for host in ("localhost", "127.0.0.1", "LOCALHOST"):
        assert insecure_cookie_warning(cookie_secure=True, scheme="http", host=host) is None
    assert insecure_cookie_warning(cookie_secure=True, scheme="https", host="labels.example.org") is None
    for auto_or_off in (None, False):
        assert insecure_cookie_warning(cookie_secure=auto_or_off, scheme="http", host="labels.example.org") is None
