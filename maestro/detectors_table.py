# ruff: noqa: E501
"""detect-secrets' regex detectors as `maestro.redaction` extracts them, for the version named here:
read instead of importing detect-secrets (and requests) when that version is installed and the
user cache holds none yet (a first run). A test compares them with the installed package's;
its failure prints the rows to put here."""

from __future__ import annotations

VERSION = "1.5.0"

ROWS: list[tuple[str, str, int, int | None]] = [
    ("artifactory-credentials", '(?:\\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\\s|"|$)', 32, None),
    ("artifactory-credentials", '(?:\\s|=|:|"|^)AP[\\dABCDEF][a-zA-Z0-9]{8,}(?:\\s|"|$)', 32, None),
    ("aws-access-key", "(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", 32, None),
    (
        "aws-access-key",
        "aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\\'\\\"]([0-9a-zA-Z/+]{40})[\\'\\\"]",
        34,
        None,
    ),
    ("azure-storage-account-access-key", "AccountKey=[a-zA-Z0-9+\\/=]{88}", 32, None),
    (
        "basic-auth-credentials",
        "://[^:/\\?\\#\\[\\]@!\\$\\&'\\(\\)\\*\\+,;=\\s]+:([^:/\\?\\#\\[\\]@!\\$\\&'\\(\\)\\*\\+,;=\\s]+)@",
        32,
        None,
    ),
    (
        "cloudant-credentials",
        "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([0-9a-f]{64})(?:\"|\\'|)",
        34,
        None,
    ),
    (
        "cloudant-credentials",
        "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([a-z]{24})(?:\"|\\'|)",
        34,
        None,
    ),
    (
        "cloudant-credentials",
        "(?:https?\\:\\/\\/)[\\w\\-]+\\:([0-9a-f]{64})\\@[\\w\\-]+\\.cloudant\\.com",
        34,
        None,
    ),
    (
        "cloudant-credentials",
        "(?:https?\\:\\/\\/)[\\w\\-]+\\:([a-z]{24})\\@[\\w\\-]+\\.cloudant\\.com",
        34,
        None,
    ),
    (
        "discord-bot-token",
        "[MNO][a-zA-Z\\d_-]{23,25}\\.[a-zA-Z\\d_-]{6}\\.[a-zA-Z\\d_-]{27}",
        32,
        None,
    ),
    ("github-token", "(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}", 32, None),
    ("gitlab-token", "(glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_\\-]{20,50}(?!\\w)", 32, None),
    ("gitlab-token", "GR1348941[A-Za-z0-9_\\-]{20,50}(?!\\w)", 32, None),
    ("gitlab-token", "glcbt-([0-9a-fA-F]{2}_)?[A-Za-z0-9_\\-]{20,50}(?!\\w)", 32, None),
    ("gitlab-token", "glimt-[A-Za-z0-9_\\-]{25}(?!\\w)", 32, None),
    ("gitlab-token", "glptt-[A-Za-z0-9_\\-]{40}(?!\\w)", 32, None),
    ("gitlab-token", "glagent-[A-Za-z0-9_\\-]{50,1024}(?!\\w)", 32, None),
    ("gitlab-token", "gloas-[A-Za-z0-9_\\-]{64}(?!\\w)", 32, None),
    (
        "ibm-cloud-iam-key",
        "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:ibm(?:_|-|)cloud(?:_|-|)iam|cloud(?:_|-|)iam|ibm(?:_|-|)cloud|ibm(?:_|-|)iam|ibm|iam|cloud|)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([a-zA-Z0-9_\\-]{44}(?![a-zA-Z0-9_\\-]))(?:\"|\\'|)",
        34,
        None,
    ),
    (
        "ibm-cos-hmac-credentials",
        "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:(?:ibm)?[-_]?cos[-_]?(?:hmac)?|)(?:_|-|)(?:secret[-_]?(?:access)?[-_]?key)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([a-f0-9]{48}(?![a-f0-9]))(?:\"|\\'|)",
        34,
        None,
    ),
    ("json-web-token", "eyJ[A-Za-z0-9-_=]+\\.[A-Za-z0-9-_=]+\\.?[A-Za-z0-9-_.+/=]*?", 32, None),
    ("mailchimp-access-key", "[0-9a-z]{32}-us[0-9]{1,2}", 32, None),
    ("npm-tokens", "\\/\\/.+\\/:_authToken=\\s*((npm_.+)|([A-Fa-f0-9-]{36})).*", 32, None),
    ("openai-token", "sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}", 32, None),
    ("private-key", "BEGIN DSA PRIVATE KEY", 32, None),
    ("private-key", "BEGIN EC PRIVATE KEY", 32, None),
    ("private-key", "BEGIN OPENSSH PRIVATE KEY", 32, None),
    ("private-key", "BEGIN PGP PRIVATE KEY BLOCK", 32, None),
    ("private-key", "BEGIN PRIVATE KEY", 32, None),
    ("private-key", "BEGIN RSA PRIVATE KEY", 32, None),
    ("private-key", "BEGIN SSH2 ENCRYPTED PRIVATE KEY", 32, None),
    ("private-key", "PuTTY-User-Key-File-2", 32, None),
    ("pypi-token", "pypi-AgEIcHlwaS5vcmc[A-Za-z0-9-_]{70,}", 32, None),
    ("pypi-token", "pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9-_]{70,}", 32, None),
    ("sendgrid-api-key", "SG\\.[a-zA-Z0-9_-]{22}\\.[a-zA-Z0-9_-]{43}", 32, None),
    ("slack-token", "xox(?:a|b|p|o|s|r)-(?:\\d+-)+[a-z0-9]+", 34, None),
    (
        "slack-token",
        "https://hooks\\.slack\\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+",
        98,
        None,
    ),
    (
        "softlayer-credentials",
        "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:softlayer|sl)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)(?:\"|\\'|)(?:\\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|\\'|)([a-z0-9]{64})(?:\"|\\'|)",
        34,
        None,
    ),
    (
        "softlayer-credentials",
        "(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/([a-z0-9]{64})",
        34,
        None,
    ),
    ("square-oauth-secret", "sq0csp-[0-9A-Za-z\\\\\\-_]{43}", 32, None),
    ("stripe-access-key", "(?:r|s)k_live_[0-9a-zA-Z]{24}", 32, None),
    ("telegram-bot-token", "\\d{8,10}:[0-9A-Za-z_-]{35}", 32, None),
    ("twilio-api-key", "AC[a-z0-9]{32}", 32, None),
    ("twilio-api-key", "SK[a-z0-9]{32}", 32, None),
    (
        "secret-keyword-quoted",
        "(api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret|contraseña|contrasena)\\w*([]\\'\"]{0,2})?:(\\s*)([\\'\"`])((?=[^\\v\\'\\\"]*)(?=\\w+)[^\\v\\'\\\"]*[^\\v,\\'\\\"`])(\\4)",
        34,
        5,
    ),
    (
        "secret-keyword-quoted",
        "([\\'\"`])((?=[^\\v\\'\\\"]*)(?=\\w+)[^\\v\\'\\\"]*[^\\v,\\'\\\"`])(\\1)\\s*[!=]{2,3}\\s*\\w*(api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret|contraseña|contrasena)\\w*",
        32,
        2,
    ),
    (
        "secret-keyword-quoted",
        "(api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret|contraseña|contrasena)\\w*([]\\'\"]{0,2})?\\s*(={1,3}|!==?)\\s*([\\'\"`])((?=[^\\v\\'\\\"]*)(?=\\w+)[^\\v\\'\\\"]*[^\\v,\\'\\\"`])(\\4)",
        34,
        5,
    ),
    (
        "secret-keyword-quoted",
        "(api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret|contraseña|contrasena)\\w*[^\\s]{0,50}?\\s*([\\'\"`])((?=[^\\v\\'\\\"]*)(?=\\w+)[^\\v\\'\\\"]*[^\\v,\\'\\\"`])(\\2);",
        34,
        3,
    ),
    (
        "secret-keyword-quoted",
        "(api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret|contraseña|contrasena)\\w*([]\\'\"]{0,2})?\\s*=>?\\s*([\\'\"`])((?=[^\\v\\'\\\"]*)(?=\\w+)[^\\v\\'\\\"]*[^\\v,\\'\\\"`])(\\3)",
        34,
        4,
    ),
]
