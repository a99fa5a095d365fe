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
mail_users = [
    {
        "address": "alice@example.test",
        "password_hash": "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=4$nVOKsdZ6jxFCaM25V6o1hg$f+8kni1z0MjuW+aec74wY/I0TE2CAJzZynrhorVjZ4I",
    },
    {
        "address": "bob@example.test",
        "password_hash": "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=4$5hyj9L5Xytn7X0vJWUsJIQ$6no7YTdGdmYMQCmnIIfAAYexSYf+YR7TB0F2TY/anWk",
    },
]

# Largest message accepted, in bytes; Postfix and Dovecot's LMTP server share it.
message_size_limit = 25 * 1024 * 1024

# Separates the address extension: alice+lists@example.test is delivered to alice.
recipient_delimiter = "+"

# Root of the maildirs on the mailbox hosts (clause 2.2.3).
mail_root = "/var/vmail"

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
    "5.1.5": {
        "mail_users": "password_hash takes hashes only; the cluster model rejects plaintext",
    },
}
