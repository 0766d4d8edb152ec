"""Sends sign-in links: by SMTP when SMTP_URL is set, otherwise (development only) as files
in DATA_DIR/outbox."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import smtplib
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.lib.errors import ConfigurationError
from app.settings import Settings

logger = logging.getLogger(__name__)
SMTP_TIMEOUT = 15.0
OUTBOX = "outbox"  # under DATA_DIR


def _message(settings: Settings, to: str, link: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Sign in to ChatWithMe"
    message["From"] = settings.email_from
    message["To"] = to
    message.set_content(
        f"Sign in to ChatWithMe with this link:\n\n{link}\n\n"
        "It works once and expires in 24 hours. If you did not ask for it, ignore this email.\n"
    )
    return message


def _send_smtp(smtp_url: str, message: EmailMessage) -> None:
    """smtp://user:pass@host:587 (STARTTLS when offered) or smtps://...:465 (TLS)."""
    parts = urlsplit(smtp_url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ConfigurationError("SMTP_URL must look like smtp://user:password@host:587")
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(
            parts.hostname,
            parts.port or 465,
            timeout=SMTP_TIMEOUT,
            context=ssl.create_default_context(),
        )
    else:
        client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=SMTP_TIMEOUT)
    with client:
        if parts.scheme == "smtp" and client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def _write_to_outbox(settings: Settings, message: EmailMessage) -> Path:
    """Development without SMTP: the message as an .eml file, readable by its owner only."""
    outbox = settings.data_dir / OUTBOX
    outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = outbox / f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}.eml"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(message.as_bytes())
    return path


async def send_sign_in_link(settings: Settings, to: str, link: str) -> None:
    """Deliver the link; failures are logged, never shown to the requester."""
    if settings.smtp_url is None:
        path = await asyncio.to_thread(_write_to_outbox, settings, _message(settings, to, link))
        # The link itself never goes to a log: logs are read by more people than the mailbox.
        logger.warning("no SMTP_URL (development): the sign-in email for %s is in %s", to, path)
        return
    try:
        await asyncio.to_thread(_send_smtp, settings.smtp_url, _message(settings, to, link))
    except (OSError, smtplib.SMTPException, ConfigurationError) as exc:
        logger.error("could not send the sign-in email to %s: %s", to, exc)
