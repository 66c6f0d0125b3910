"""The appliance's admin key, for the bench scripts that drive its HTTP API.

`appliance serve` writes the key of its first admin client to `<state-dir>/admin.key` (mode
0600) at its first start, before it listens; later starts on the same state directory keep the
same key. Every API request then carries `Authorization: Bearer <key>` (see README, "Clients
and keys"). Only the six vmcloud endpoints would work without it, and only from loopback.
"""
from pathlib import Path


def admin_key(state_dir):
    """The key in `<state_dir>/admin.key`, or None while the appliance has not written it yet."""
    try:
        return Path(state_dir, "admin.key").read_text().strip() or None
    except FileNotFoundError:
        return None


def auth_headers(key):
    """The header that authenticates a request with `key` (none when there is no key yet)."""
    return {"Authorization": f"Bearer {key}"} if key else {}
