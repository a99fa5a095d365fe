"""A mail client that runs inside the test client container, with Python's standard library only.

It reads one JSON request on stdin (passwords included, so they never appear on a command line)
and prints one JSON report on stdout. Every connection goes to the host named in the request:
the cluster's service name, which the client container resolves to the load balancer.
"""

from __future__ import annotations

import contextlib
import email
import email.utils
import imaplib
import json
import poplib
import smtplib
import socket
import ssl
import sys
import time
import uuid
from email.message import EmailMessage

CA_FILE = "/etc/mailfleet-ca.crt"
TIMEOUT = 20


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=CA_FILE)


def read_greeting(host: str, port: int, implicit_tls: bool) -> str:
    """Return the first line the server sends, or "" when it sends nothing."""
    with socket.create_connection((host, port), timeout=5) as connection:
        if implicit_tls:
            with tls_context().wrap_socket(connection, server_hostname=host) as secure:
                return secure.recv(512).decode(errors="replace").strip()
        return connection.recv(512).decode(errors="replace").strip()


GREETINGS = {
    25: ("220", False),
    587: ("220", False),
    465: ("220", True),
    143: ("* OK", False),
    993: ("* OK", True),
    110: ("+OK", False),
    995: ("+OK", True),
}


def banners(request: dict) -> dict:
    """Report, per port, whether the service behind the load balancer greets as it should."""
    report = {}
    for port, (prefix, implicit_tls) in GREETINGS.items():
        try:
            greeting = read_greeting(request["host"], port, implicit_tls)
        except (OSError, ssl.SSLError):
            greeting = ""
        report[str(port)] = greeting.startswith(prefix)
    return report


def ehlo(request: dict) -> dict:
    """Return the EHLO keywords a port offers, before and (when asked) after STARTTLS."""
    port = request["port"]
    if port == 465:
        smtp = smtplib.SMTP_SSL(request["host"], port, timeout=TIMEOUT, context=tls_context())
    else:
        smtp = smtplib.SMTP(request["host"], port, timeout=TIMEOUT)
    with smtp:
        smtp.ehlo("client.invalid")
        report = {"plain": sorted(smtp.esmtp_features)}
        if request.get("starttls") and smtp.has_extn("starttls"):
            smtp.starttls(context=tls_context())
            smtp.ehlo("client.invalid")
            report["tls"] = sorted(smtp.esmtp_features)
        return report


def relay(request: dict) -> dict:
    """Try to relay without authentication; return the replies to MAIL FROM and RCPT TO."""
    with smtplib.SMTP(request["host"], request["port"], timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.invalid")
        if request.get("starttls"):
            smtp.starttls(context=tls_context())
            smtp.ehlo("client.invalid")
        mail = smtp.mail(request["sender"])
        rcpt = smtp.rcpt(request["recipient"])
        return {"mail": [mail[0], mail[1].decode()], "rcpt": [rcpt[0], rcpt[1].decode()]}


def imap_capabilities(request: dict) -> dict:
    """Return the IMAP capabilities on port 143 before STARTTLS."""
    with imaplib.IMAP4(request["host"], 143, timeout=TIMEOUT) as imap:
        return {"capabilities": sorted(imap.capabilities)}


def smtp_login(request: dict) -> dict:
    """Try AUTH on a submission port after STARTTLS; return the reply code and text."""
    with smtplib.SMTP(request["host"], request.get("port", 587), timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls_context())
        try:
            code, text = smtp.login(request["user"], request["password"])
        except smtplib.SMTPAuthenticationError as error:
            code, text = error.smtp_code, error.smtp_error
        return {"code": code, "text": text.decode(errors="replace")}


# Port -> the plaintext protocol that negotiates STARTTLS on it, or None for implicit TLS.
STARTTLS = {
    25: "smtp", 587: "smtp", 465: None, 143: "imap", 993: None, 110: "pop3", 995: None,
}
TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def start_plaintext(connection: socket.socket, protocol: str) -> None:
    """Run the plaintext part of SMTP, IMAP or POP3 up to the server's go-ahead for TLS."""
    reader = connection.makefile("rb")

    def reply() -> bytes:
        line = reader.readline()
        while protocol == "smtp" and line[3:4] == b"-":
            line = reader.readline()
        return line

    reply()
    if protocol == "smtp":
        connection.sendall(b"EHLO client.invalid\r\n")
        reply()
        connection.sendall(b"STARTTLS\r\n")
    elif protocol == "imap":
        connection.sendall(b"a STARTTLS\r\n")
    else:
        connection.sendall(b"STLS\r\n")
    answer = reply()
    if not (answer.startswith((b"220", b"+OK")) or b"OK" in answer):
        raise ssl.SSLError(f"STARTTLS rejected by the server: {answer!r}")


def handshake(host: str, port: int, version: str, server_name: str, protocol: str | None,
              context: ssl.SSLContext | None = None) -> bool:
    """Return whether a TLS handshake of exactly this version succeeds on the port.

    Versions before TLS 1.2 need OpenSSL's security level 0 on the client side, or the
    client would not even offer them.
    """
    context = context or tls_context()
    context.minimum_version = TLS_VERSIONS[version]
    context.maximum_version = TLS_VERSIONS[version]
    if version in ("TLSv1", "TLSv1.1"):
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        with socket.create_connection((host, port), timeout=10) as connection:
            if protocol:
                start_plaintext(connection, protocol)
            with context.wrap_socket(connection, server_hostname=server_name):
                return True
    except (OSError, ssl.SSLError):
        return False


def tls_handshakes(request: dict) -> dict:
    """Report, per port and TLS version, whether a handshake succeeds."""
    return {
        str(port): {
            version: handshake(request["host"], port, version, request["host"], protocol)
            for version in request["versions"]
        }
        for port, protocol in STARTTLS.items()
    }


def imap_login(request: dict) -> dict:
    """Log in over IMAP with implicit TLS; return whether it worked and how long it took."""
    started = time.monotonic()
    try:
        with imaplib.IMAP4_SSL(request["host"], 993, ssl_context=tls_context(),
                               timeout=60) as imap:
            imap.login(request["user"], request["password"])
            accepted = True
    except imaplib.IMAP4.error:
        accepted = False
    return {"accepted": accepted, "seconds": time.monotonic() - started}


def reachable(request: dict) -> dict:
    """Report, per address:port, whether a TCP connection opens within three seconds."""
    report = {}
    for target in request["targets"]:
        address, port = target.rsplit(":", 1)
        try:
            with socket.create_connection((address, int(port)), timeout=3):
                report[target] = True
        except OSError:
            report[target] = False
    return report


def submit(request: dict, sender: str, recipient: str, password: str) -> str:
    """Send a message with STARTTLS and AUTH on port 587; return its Message-ID."""
    message = EmailMessage()
    message_id = f"<{uuid.uuid4()}@client.invalid>"
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = "mailfleet round trip"
    message["Message-ID"] = message_id
    message.set_content("Sent through the load balancer, read back over IMAP and POP3.\n")

    with smtplib.SMTP(request["host"], 587, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls_context())
        smtp.login(sender, password)
        smtp.send_message(message)
    return message_id


def imap_fetch(request: dict, user: str, password: str, message_id: str) -> bytes | None:
    """Return the headers of the message with this Message-ID in the INBOX, or None."""
    with imaplib.IMAP4_SSL(request["host"], 993, ssl_context=tls_context(),
                           timeout=TIMEOUT) as imap:
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        status, found = imap.search(None, "HEADER", "Message-ID", message_id)
        numbers = found[0].split()
        if status != "OK" or not numbers:
            return None
        status, data = imap.fetch(numbers[0], "(BODY.PEEK[HEADER])")
        return data[0][1]


def pop3_has(request: dict, user: str, password: str, message_id: str) -> bool:
    """Return whether the mailbox contains the message, reading headers over POP3 with TLS."""
    pop = poplib.POP3_SSL(request["host"], 995, context=tls_context(), timeout=TIMEOUT)
    try:
        pop.user(user)
        pop.pass_(password)
        count, _ = pop.stat()
        for number in range(count, 0, -1):
            _, lines, _ = pop.top(number, 0)
            headers = email.message_from_bytes(b"\r\n".join(lines))
            if headers["Message-ID"] == message_id:
                return True
        return False
    finally:
        pop.quit()


def build_message(request: dict) -> EmailMessage:
    """Build a message from the request: sender, recipient, subject, body, attachment and
    Message-ID, each optional but the first two."""
    message = EmailMessage()
    message["From"] = request["sender"]
    message["To"] = request["recipient"]
    message["Subject"] = request.get("subject", "mailfleet filter test")
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = request.get("message_id") or f"<{uuid.uuid4()}@client.invalid>"
    # Rspamd caches clamd's verdict per content, so each message gets content of its own.
    default_body = f"A message for the filter tests, {uuid.uuid4()}.\n"
    message.set_content(request.get("body", default_body))
    attachment = request.get("attachment")
    if attachment is not None:
        message.add_attachment(attachment.encode("latin-1"), maintype="application",
                               subtype="octet-stream", filename="attachment.bin")
    return message


def send(request: dict) -> dict:
    """Send messages over SMTP and return each one's SMTP reply, 4xx and 5xx included.

    Port 25 without login, or a submission port with STARTTLS and AUTH when the request has a
    password. "count" messages go over one connection, stopping at the first refusal. A
    refused connection, or one closed before a reply, is reported with code 0.
    """
    replies = []
    try:
        with smtplib.SMTP(request["host"], request.get("port", 25),
                          timeout=request.get("timeout", 120)) as smtp:
            smtp.ehlo("client.invalid")
            if "password" in request:
                smtp.starttls(context=tls_context())
                smtp.ehlo("client.invalid")
                smtp.login(request["sender"], request["password"])
            for _ in range(request.get("count", 1)):
                message = build_message(request)
                try:
                    smtp.send_message(message)
                    replies.append({"code": 250, "text": "", "message_id": message["Message-ID"]})
                except smtplib.SMTPRecipientsRefused as error:
                    code, text = next(iter(error.recipients.values()))
                    replies.append({"code": code, "text": text.decode(errors="replace")})
                except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
                    replies.append({"code": error.smtp_code,
                                    "text": error.smtp_error.decode(errors="replace")})
                if replies[-1]["code"] != 250:
                    break
                smtp.rset()
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as error:
        replies.append({"code": 0, "text": f"{type(error).__name__}: {error}"})
    return {"replies": replies}


def fetch(request: dict) -> dict:
    """Wait up to "wait" seconds for a message in the INBOX; return the first copy whole, or
    null, and the number of copies."""
    started = time.monotonic()
    while True:
        with imaplib.IMAP4_SSL(request["host"], 993, ssl_context=tls_context(),
                               timeout=TIMEOUT) as imap:
            imap.login(request["user"], request["password"])
            imap.select("INBOX", readonly=True)
            _, found = imap.search(None, "HEADER", "Message-ID", request["message_id"])
            numbers = found[0].split()
            if numbers:
                _, data = imap.fetch(numbers[0], "(BODY.PEEK[])")
                return {"message": data[0][1].decode("latin-1"), "copies": len(numbers)}
        if time.monotonic() - started > request.get("wait", 30):
            return {"message": None, "copies": 0}
        time.sleep(1)


def roundtrip(request: dict) -> dict:
    """Send from one user to another, then find the message over IMAP and over POP3."""
    sender, recipient = request["sender"], request["recipient"]
    passwords = request["passwords"]
    message_id = submit(request, sender, recipient, passwords[sender])

    started = time.monotonic()
    headers = None
    while headers is None and time.monotonic() - started < request.get("wait", 60):
        headers = imap_fetch(request, recipient, passwords[recipient], message_id)
        if headers is None:
            time.sleep(0.5)
    if headers is None:
        raise SystemExit(f"message {message_id} did not arrive over IMAP")

    received = email.message_from_bytes(headers).get_all("Received", [])
    return {
        "message_id": message_id,
        "sender": sender,
        "recipient": recipient,
        "imap_seconds": time.monotonic() - started,
        "pop3_found": pop3_has(request, recipient, passwords[recipient], message_id),
        "received": [" ".join(header.split()) for header in received],
    }


def send_many(request: dict) -> dict:
    """Send `count` numbered messages, one every `interval` seconds; return their Message-IDs.

    Each message gets its own connection, as separate clients would send them: on 587 with
    the sender's `password`, or on port 25 without one.
    """
    sender, recipient = request["sender"], request["recipient"]
    message_ids = []
    for number in range(request["count"]):
        message = EmailMessage()
        message_id = f"<{uuid.uuid4()}@client.invalid>"
        message["From"] = sender
        message["To"] = recipient
        message["Subject"] = f"{request['subject']} {number}"
        message["Message-ID"] = message_id
        message.set_content(f"Message {number} of {request['count']}.\n")
        with smtp_session(request, sender, request.get("password")) as smtp:
            smtp.send_message(message)
        message_ids.append(message_id)
        time.sleep(request.get("interval", 0))
    return {"message_ids": message_ids}


def imap_messages(request: dict) -> dict:
    """Return the Message-ID, subject and body of every INBOX message whose subject contains
    `subject`."""
    with imaplib.IMAP4_SSL(request["host"], 993, ssl_context=tls_context(),
                           timeout=TIMEOUT) as imap:
        imap.login(request["user"], request["password"])
        imap.select("INBOX", readonly=True)
        status, found = imap.search(None, "SUBJECT", f'"{request["subject"]}"')
        messages = []
        for number in found[0].split() if status == "OK" else []:
            status, data = imap.fetch(number, "(BODY.PEEK[])")
            parsed = email.message_from_bytes(data[0][1])
            body = parsed.get_payload(decode=True) or b""
            messages.append({
                "message_id": parsed["Message-ID"],
                "subject": parsed["Subject"],
                "from": parsed["From"],
                "body": body.decode(errors="replace"),
            })
        return {"messages": messages}


def stream_message(sender: str, recipient: str, number: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"mailfleet stream {number}"
    message["Message-ID"] = f"<{uuid.uuid4()}@client.invalid>"
    message.set_content(f"Message {number} of a stream sent while hosts fail.\n")
    return message


def smtp_session(request: dict, sender: str, password: str | None) -> smtplib.SMTP:
    """Open an SMTP session with STARTTLS.

    With a password, the sender logs in on submission (587). Without one, the session uses
    port 25 as another mail server would, so no sender rate limit applies.
    """
    smtp = smtplib.SMTP(request["host"], 25 if password is None else 587, timeout=TIMEOUT)
    smtp.starttls(context=tls_context())
    if password is not None:
        smtp.login(sender, password)
    return smtp


def stream(request: dict) -> dict:
    """Send `count` messages one after another, `interval` seconds apart.

    A session sends `per_session` messages, so that the load balancer spreads the sessions over
    the MX hosts. A message whose submission fails (a dropped connection, a temporary error) is
    sent again on a new session until the server accepts it or `give_up` seconds pass. Returns
    the accepted Message-IDs, the seconds since the start at which each was accepted, the
    retries, the Message-IDs sent more than once and the errors seen (the first 20). The
    sender logs in on 587 when the request has a `password`, and the messages arrive on port
    25 when it has none.
    """
    sender, recipient = request["sender"], request["recipient"]
    password = request.get("password")
    started = time.monotonic()
    accepted, accepted_at, errors, resent = [], [], [], []
    retries = 0
    smtp = None
    for number in range(request["count"]):
        message = stream_message(sender, recipient, number)
        deadline = time.monotonic() + request.get("give_up", 180)
        while True:
            try:
                if smtp is None:
                    smtp = smtp_session(request, sender, password)
                smtp.send_message(message)
                break
            except (OSError, smtplib.SMTPException) as error:
                retries += 1
                if message["Message-ID"] not in resent:
                    resent.append(message["Message-ID"])
                if len(errors) < 20:
                    errors.append(f"{time.monotonic() - started:.1f} s: {error!r}"[:200])
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    if smtp is not None:
                        smtp.close()
                smtp = None
                if time.monotonic() > deadline:
                    raise SystemExit(f"message {number} was not accepted: {error!r}") from None
                time.sleep(1)
        accepted.append(message["Message-ID"])
        accepted_at.append(round(time.monotonic() - started, 2))
        if len(accepted) % request.get("per_session", 10) == 0:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()
            smtp = None
        time.sleep(request.get("interval", 0.1))
    if smtp is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()
    return {"message_ids": accepted, "accepted_at": accepted_at, "retries": retries,
            "resent": resent, "errors": errors}


def message_ids(request: dict) -> dict:
    """Return the Message-ID of every message in the user's INBOX, read over IMAP with TLS; a
    message held twice is listed twice."""
    with imaplib.IMAP4_SSL(request["host"], 993, ssl_context=tls_context(),
                           timeout=TIMEOUT) as imap:
        imap.login(request["user"], request["password"])
        imap.select("INBOX", readonly=True)
        status, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        found = []
        for item in data if status == "OK" else []:
            if isinstance(item, tuple):
                value = email.message_from_bytes(item[1])["Message-ID"]
                if value:
                    found.append(" ".join(value.split()))
        return {"message_ids": found}


ACTIONS = {
    "banners": banners,
    "ehlo": ehlo,
    "fetch": fetch,
    "imap_capabilities": imap_capabilities,
    "imap_login": imap_login,
    "imap_messages": imap_messages,
    "message_ids": message_ids,
    "reachable": reachable,
    "relay": relay,
    "roundtrip": roundtrip,
    "send": send,
    "send_many": send_many,
    "smtp_login": smtp_login,
    "stream": stream,
    "tls_handshakes": tls_handshakes,
}


def main() -> None:
    request = json.load(sys.stdin)
    print(json.dumps(ACTIONS[request["action"]](request)))


if __name__ == "__main__":
    main()
