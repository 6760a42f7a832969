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
import threading
import time
import uuid
from typing import Any

from kzconsole.engine import ApiKey, Store

_ACCOUNT = re.compile(r"[0-9a-f]{32}")


def digest(secret: str) -> str:
    # surrogatepass: any string has a digest (a key is hex, so only a wrong key holds a lone
    # surrogate, such as the "\ud800" of a JSON body, which surrogateescape could not encode).
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


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


class VerifiedTokens:
    """The tokens a server found valid in the store, kept while the store's changes feed stays
    at the position read before they were looked up: removing a key records a change (by any
    process on the store), so the next request sees the feed moved, drops every token kept and
    reads its own again; and each is kept only until it expires. Only for stores whose feed moves
    at every commit, in commit order (``Store.ordered_changes``): there an unchanged position
    proves that no key was removed since. An unknown token is never kept (it is read each time).

    What it saves: a store read and an ``ApiKey`` a request (a fifth of a ``GET`` of one job),
    for a read of the feed's position, which a listing page reads anyway for its page cache."""

    def __init__(self, store: Store, *, limit: int = 10_000) -> None:
        self._store = store
        self._limit = limit
        self._lock = threading.Lock()  # tokens are checked on the event loop and in worker threads
        self._position: int | None = None
        self._keys: dict[str, tuple[ApiKey, float]] = {}  # token hash -> (key, monotonic deadline)

    def key(self, token: str, position: int) -> ApiKey | None:
        """The key behind ``token``, or None; ``position`` is the feed's, read just before."""
        token_hash = digest(token)
        with self._lock:
            if position != self._position:
                self._keys.clear()
                self._position = position
                found = None
            else:
                found = self._keys.get(token_hash)
        if found is not None and time.monotonic() < found[1]:
            return found[0]
        entry = self._store.api_token(token_hash)
        if entry is None:
            return None
        key, expires = entry
        # Expiry is on the store's clock; kept on this process's monotonic clock from here.
        deadline = time.monotonic() + (expires - self._store.now())
        with self._lock:
            if position == self._position and len(self._keys) < self._limit:
                self._keys[token_hash] = (key, deadline)
        return key


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
