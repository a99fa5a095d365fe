"""Cluster-wide settings: the hosted domain, its users (password hashes only) and mail policies.

Every key is validated by mailfleet.model.Cluster before any host is touched. Make a hash with
`mailfleet hash-password`; the plaintext never belongs here.
"""

# Domains the cluster receives mail for; each mailbox is user@domain (clause 2.1).
mail_domains = ["example.test"]

# The name clients connect to for SMTP, IMAP and POP3; every TLS certificate must cover it.
mail_hostname = "mail.example.test"

# The mailbox that receives mail for postmaster@ and abuse@ of every hosted domain; also the
# sender of bounces and LMTP rejections. It must be one of mail_users.
postmaster = "alice@example.test"

# Virtual users and their Dovecot password hashes (clauses 2.2.1, 5.1.5). The container
# cluster replaces these hashes with ones of run-time test passwords (test_password_store).
# Optional per user: quota (bytes or "2GiB"; none means no limit), aliases, and state
# ("active", or "locked": receives mail but every login fails).
mail_users = [
    {
        "address": "alice@example.test",
        "quota": "2GiB",
        "password_hash": "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=4$nVOKsdZ6jxFCaM25V6o1hg$f+8kni1z0MjuW+aec74wY/I0TE2CAJzZynrhorVjZ4I",
    },
    {
        "address": "bob@example.test",
        "password_hash": "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=4$5hyj9L5Xytn7X0vJWUsJIQ$6no7YTdGdmYMQCmnIIfAAYexSYf+YR7TB0F2TY/anWk",
    },
]

# Largest message accepted, in bytes; Postfix and Dovecot's LMTP server share it.
message_size_limit = 25 * 1024 * 1024

# Separates the address extension: alice+lists@example.test is delivered to alice. A message
# sent to alice@ and alice+lists@ (or ALICE@) at once arrives once per address written.
recipient_delimiter = "+"

# Root of the maildirs on the mailbox hosts (clause 2.2.3).
mail_root = "/var/vmail"

# Client networks that may send through port 25 without logging in, besides loopback; empty
# means only authenticated users relay (clause 3.2).
relay_networks = []

# Oldest TLS version any service accepts (clause 3.2).
tls_min_protocol = "TLSv1.2"

# Login bans, firewall, TLS ciphers and log retention (clauses 3.2, 5.1.5). Keys left out keep
# their defaults; mailfleet/security.py lists every key with its default and range.
security = {
    "ban_max_failures": 10,
    "ban_seconds": 3600,
    # Networks that may reach SSH: narrow this to your management networks.
    "admin_networks": ["0.0.0.0/0"],
    "log_retention_days": 180,
}

# Spam and virus filter, DKIM signing, rate limits and Redis (clauses 2.2.4, 2.3.1, 5.1.8). Keys
# left out keep their defaults; mailfleet/filtering.py lists every key with its default and
# range. ClamAV needs a signature source: set clamav_mirror to your signature mirror. The
# container cluster replaces this whole dict with its own (offline, test signatures).
filtering = {
    "offline": False,
    "actions": {"greylist": 4, "add_header": 6, "reject": 15},
    "greylisting": True,
    # Reject a message with a file clamd cannot scan whole (past its size or depth limits).
    "reject_unscannable": True,
    "dkim_selector": "mail",
    "dkim_key_folder": "/etc/mailfleet/dkim",
    "dmarc_policy": "quarantine",
    "rate_limit_messages": 100,
    "rate_limit_period": "1h",
    "redis_password_file": "/etc/mailfleet/redis-password",
}

# Clauses of the standard that these settings serve: clause id -> {data key: what it does}.
# `mailfleet report` reads it; pyinfra drops group data names that start with "__".
__clauses__ = {
    "2.1": {
        "mail_domains": "the hosted domains: every mailbox address is user@domain in one of them",
        "mail_users": "each address is listed once; the cluster model rejects duplicates",
    },
    "2.2.1": {
        "mail_users": "one fixed account per customer, with the hash of its initial password",
    },
    "2.2.3": {
        "mail_root": "the folder on the mailbox hosts where mail is stored",
    },
    "3.2": {
        "relay_networks": "no open relay: only these networks and logged-in users may relay",
        "tls_min_protocol": "TLS 1.0 and 1.1 are refused on every mail port",
        "security": "ciphers, firewall and SSH networks (tls_ciphers, admin_networks)",
    },
    "2.2.4": {
        "filtering": "Rspamd's action thresholds, greylisting, DKIM and the per-user rate limit",
    },
    "2.3.1": {
        "filtering": "ClamAV's signature source (clamav_mirror) for the virus scan of each message",
    },
    "5.1.8": {
        "filtering": "ClamAV's signature source (clamav_mirror) for the virus scan of each message",
    },
    "5.1.5": {
        "mail_users": "password_hash takes hashes only; the cluster model rejects plaintext",
        "security": "failed-login bans and account locks; log_retention_days of kept logs",
    },
}
