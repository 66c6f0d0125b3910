"""schemathesis hooks for the real-guest pass of scripts/schemathesis.sh (SCHEMATHESIS_HOOKS).

Every set-pool-size the fuzzer sends with valid numbers is clamped to at most 2 VMs and a linger
of at least 10 s, so the pass boots at most two TCG guests on the 2-core test host instead of the
thousands a random max asks for. Invalid values (negative, not numbers) pass unchanged: those are
the negative cases the checks judge. Each clamp is printed, to show the hook ran.
"""
import schemathesis

MAX_VMS = 2
MIN_LINGER_MS = 10_000


def _int(value):
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number >= 0 else None


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not case.path_parameters or "linger" not in case.path_parameters:
        return
    params = case.path_parameters
    lo, hi, linger = _int(params.get("min")), _int(params.get("max")), _int(params.get("linger"))
    if lo is None or hi is None or linger is None:
        return
    clamped = {"min": min(lo, MAX_VMS), "max": min(hi, MAX_VMS), "linger": max(linger, MIN_LINGER_MS)}
    if clamped != {"min": lo, "max": hi, "linger": linger}:
        print(f"[hooks] set-pool-size {lo}/{hi}/{linger} -> {clamped['min']}/{clamped['max']}/{clamped['linger']}", flush=True)
        params.update({k: str(v) if isinstance(params.get(k), str) else v for k, v in clamped.items()})
