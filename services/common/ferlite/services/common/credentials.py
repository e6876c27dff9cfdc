"""Credentials scoped to classrooms: camera tokens (each sends frames for its own classrooms) and
teacher tokens (each reads its own classrooms), in one file format.

The file (a mounted Secret in the chart, DATA/camera-tokens in the local stack) has one line per
token: the token, then the classrooms it may send for, comma-separated, or `*` for every
classroom. `#` starts a comment. A folder works too: one file per classroom holding its token
(the chart mounts its Secret so). A camera token is accepted on face detection's frame calls
(Process, ProcessStream, Detect) and nowhere else: it cannot record events, classify crops, read
summaries or change the A/B policy, and a stolen one speaks only for its classrooms.

    # token                                   classrooms
    4q7X...a long random string...Zp0          room-101,room-102
    Jk2m...another one...............Qs9       *
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from ferlite.base.event_rules import NAME_RULE, is_name

ALL_CLASSROOMS = "*"
ALL_FILE = "all-classrooms"  # in a folder of tokens: the file of the token good for every classroom
MIN_TOKEN_CHARS = 16  # a guessable token would let anyone on the network record or read a classroom


class CredentialsError(ValueError):
    """A token file is malformed (the message names the line, never the token)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ClassroomTokens:
    tokens: tuple[str, ...] = ()
    scopes: dict[str, frozenset[str]] = field(default_factory=dict)  # sha256(token) -> classrooms

    @classmethod
    def parse(cls, text: str, where: str = "classroom tokens") -> ClassroomTokens:
        tokens: list[str] = []
        scopes: dict[str, frozenset[str]] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise CredentialsError(f"{where} line {number}: expected 'TOKEN CLASSROOM[,CLASSROOM...]' or "
                                       f"'TOKEN *'")
            token, rooms = parts
            if len(token) < MIN_TOKEN_CHARS:
                raise CredentialsError(f"{where} line {number}: the token is shorter than {MIN_TOKEN_CHARS} "
                                       "characters")
            classrooms = frozenset(rooms.split(","))
            bad = sorted(c for c in classrooms if c != ALL_CLASSROOMS and not is_name(c))
            if bad:
                raise CredentialsError(f"{where} line {number}: classroom {bad[0][:40]!r} must be {NAME_RULE}")
            if _digest(token) in scopes:
                raise CredentialsError(f"{where} line {number}: this token is listed twice")
            tokens.append(token)
            scopes[_digest(token)] = classrooms
        return cls(tuple(tokens), scopes)

    @classmethod
    def load(cls, path: str) -> ClassroomTokens:
        """From the file, or from a folder (a mounted Secret with a key per classroom): each file
        named after its classroom (`all-classrooms`: every one) holds that classroom's token."""
        if not path:
            return cls()
        where = Path(path)
        if where.is_dir():
            lines = []
            for entry in sorted(where.iterdir()):
                if entry.name.startswith(".") or not entry.is_file():  # a Secret volume's ..data links
                    continue
                room = ALL_CLASSROOMS if entry.name == ALL_FILE else entry.name
                lines.append(f"{entry.read_text().strip()} {room}  # {entry.name}")
            return cls.parse("\n".join(lines), where=path)
        return cls.parse(where.read_text(), where=path)

    def classrooms(self, token: str) -> frozenset[str] | None:
        """The classrooms `token` is good for; None when it is not one of these tokens."""
        return self.scopes.get(_digest(token))

    def allows(self, token: str, classroom: str) -> bool:
        rooms = self.classrooms(token)
        return rooms is not None and (ALL_CLASSROOMS in rooms or classroom in rooms)

    def permits(self, token: str, classroom: str, admin_token: str) -> bool:
        """Whether a caller that passed authentication with `token` may act for `classroom`: any
        classroom while no such tokens are configured, or with the admin token (compared in constant
        time); else only the token's own classrooms."""
        if not self.tokens:
            return True
        if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
            return True
        return self.allows(token, classroom)
