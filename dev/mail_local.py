"""A local SMTP server (aiosmtpd) that keeps what it receives: `make run` starts it on
127.0.0.1:8025 with every message written to `instance/mail/` as one `.eml` file; the tests
start it on a free loopback port and read the messages from memory.

``python -m dev.mail_local [--host 127.0.0.1] [--port 8025] [--folder instance/mail]``

For the tests it can also misbehave as real servers do: answer a temporary error (4xx) to
every message, refuse one recipient for good (5xx), or hold the conversation after MAIL FROM
(so that a worker can be stopped in the middle of sending)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


class MailKeeper:
    """The aiosmtpd handler: keeps each accepted message (in memory, and as .eml in `folder`)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        """Each kept message as it came over the wire."""
        self.refused: dict[str, str] = {}
        self.temporary: str | None = None
        self.released = threading.Event()
        self.released.set()
        self.held = threading.Event()
        self._lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not self.released.is_set():
            self.held.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refused:
            return self.refused[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.temporary:
            return self.temporary
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
            self.raw.append(envelope.content)
            number = len(self.messages)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            (self.folder / f"{stamp}-{number:04d}.eml").write_bytes(envelope.content)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """The messages kept for `address`."""
        return [m for m in self.messages if m["To"].addresses[0].addr_spec == address]


class LocalMail:
    """The server on `host:port` (a free loopback port by default), stopped and started again
    on the same port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, folder: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.keeper = MailKeeper(folder)
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return self.keeper.messages

    @property
    def raw(self) -> list[bytes]:
        return self.keeper.raw

    def start(self) -> LocalMail:
        self.controller = Controller(self.keeper, hostname=self.host, port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.keeper.released.set()
            self.controller.stop()
            self.controller = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        """Wait until `count` messages were kept (or `timeout` seconds), then return them all."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    """Serve a local SMTP server that writes what it receives to a folder."""
    parser = argparse.ArgumentParser(prog="python -m dev.mail_local", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--folder", type=Path, default=Path("instance/mail"))
    args = parser.parse_args(argv)
    server = LocalMail(args.host, args.port, args.folder).start()
    print(f"Local mail server on {server.url}, keeping messages in {args.folder}/", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
