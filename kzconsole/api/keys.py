"""API keys and auth tokens (contract 8.2), over the API-keys section of the store.

A key is 32 random bytes shown once, in hex (64 characters, as Kazoo's ``api_key``); a token is
32 random bytes, URL-safe. Both are high-entropy random values, so one SHA-256 is the right hash
(a slow password hash protects guessable secrets, which these are not); only the hashes are
stored, so a copy of the store gives neither keys nor live tokens away.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from typing import Any

from kzconsole.engine import ApiKey, Store

_ACCOUNT = re.compile(r"[0-9a-f]{32}")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def add_key(store: Store, account_id: str, *, name: str | None, superadmin: bool, now: float) -> tuple[ApiKey, str]:
    """Store a new key for ``account_id``; return its record and the key itself (shown once)."""
    if not _ACCOUNT.fullmatch(account_id):
        raise ValueError(f"not an account id (32 lowercase hex characters): {account_id!r}")
    secret = secrets.token_hex(32)
    key = ApiKey(
        id=uuid.uuid4().hex,
        account_id=account_id,
        name=name or None,
        superadmin=superadmin,
        created=now,
        key_hash=digest(secret),
    )
    store.add_api_key(key)
    return key, secret


def issue_token(store: Store, api_key: str, *, ttl_s: int) -> tuple[ApiKey, str, float] | None:
    """``PUT /v2/api_auth``: a new token for the key and when it expires (on the store's clock,
    which every node judges it by), or None when the key is unknown."""
    key = store.api_key_by_hash(digest(api_key))
    if key is None:
        return None
    token = secrets.token_urlsafe(32)
    expires = store.add_api_token(digest(token), key.id, ttl_s)
    if expires is None:
        return None  # the key was removed between the two calls
    return key, token, expires


def key_for_token(store: Store, token: str) -> ApiKey | None:
    found = store.api_token(digest(token))
    return found[0] if found is not None else None


# ------------------------------------------------------------------- `kzconsole api-keys`


def cmd_api_keys(args: Any, engine: Any, out: Any, print_json: Any) -> int:
    """``api-keys add|list|remove``; raises ValueError / LookupError for the caller to report."""
    store = engine.store
    command = args.api_keys_command
    if command == "add":
        key, secret = add_key(store, args.account, name=args.name, superadmin=args.superadmin, now=engine.clock.time())
        if args.json:
            print_json(
                {
                    "id": key.id,
                    "key": secret,
                    "account_id": key.account_id,
                    "name": key.name,
                    "superadmin": key.superadmin,
                }
            )
        else:
            out.write(secret + "\n")
        return 0
    if command == "list":
        keys = store.api_keys()
        if args.json:
            print_json([k.public() for k in keys])
        else:
            out.write(f"{'ID':32}  {'ACCOUNT':32}  {'SUPERADMIN':10}  NAME\n")
            for k in keys:
                out.write(f"{k.id:32}  {k.account_id:32}  {'yes' if k.superadmin else 'no':10}  {k.name or '-'}\n")
        return 0
    removed = store.remove_api_key(args.key_id)
    if removed is None:
        raise LookupError(f"no API key {args.key_id}")
    if getattr(args, "json", False):
        print_json(removed.public())
    else:
        out.write(f"{removed.id} removed\n")
    return 0
