"""A population's per-epoch shuffles in compiled code, each exactly ``Generator.permutation(n)`` of its
network's own numpy PCG64 generator.

``fit`` draws each epoch's order with ``net.state.rng.permutation(n)``; a population of k networks
would make k such calls per epoch from Python, one after another, while the cores wait. Here the
generators' states are taken out once (``take_states``), every active network's permutation is drawn
inside a ``prange`` by the same algorithm as numpy's (PCG64 XSL-RR 128/64 steps, numpy's
``random_interval`` masked rejection, and ``Generator.shuffle``'s Fisher-Yates from the last element
down), and the states are put back (``put_states``), so each generator ends where numpy's calls
would have left it and a population stays bitwise the same as ``fit``.
"""

import numpy as np
from numba import njit, prange

# PCG64's 128-bit multiplier (PCG_DEFAULT_MULTIPLIER_128), as its high and low 64-bit halves.
_MUL_HI = np.uint64(2549297995355413924)
_MUL_LO = np.uint64(4865540595714422341)
_M32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_M64 = (1 << 64) - 1


@njit(cache=True)
def _mul64(a, b):
    """(high, low) 64-bit halves of the 128-bit product of two uint64."""
    a_lo, a_hi = a & _M32, a >> _U32
    b_lo, b_hi = b & _M32, b >> _U32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _U32) + (p1 & _M32) + (p2 & _M32)
    return p3 + (p1 >> _U32) + (p2 >> _U32) + (mid >> _U32), (mid << _U32) | (p0 & _M32)


@njit(cache=True)
def _step(hi, lo, inc_hi, inc_lo):
    """One PCG64 step: state ← state · multiplier + inc (mod 2^128), as (high, low) halves; returns the
    new state's halves and its XSL-RR output."""
    h, l = _mul64(lo, _MUL_LO)
    h = h + lo * _MUL_HI + hi * _MUL_LO
    l2 = l + inc_lo
    h = h + inc_hi + (_ONE if l2 < l else _ZERO)
    x = h ^ l2
    rot = h >> np.uint64(58)
    return h, l2, (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


@njit(cache=True)
def _permutation(st, out):
    """out = ``Generator.permutation(len(out))`` of the generator of state ``st`` = [state_hi, state_lo,
    inc_hi, inc_lo, has_uint32, uinteger], advanced as numpy advances it: Fisher-Yates from the last
    element down, each index by numpy's ``random_interval`` (masked rejection on ``next_uint32``,
    which hands out the buffered high half of the last 64-bit draw before drawing again; on
    ``next_uint64`` above 2^32). The state is kept in locals in the loop and stored at the end."""
    n = out.shape[0]
    for i in range(n):
        out[i] = i
    hi, lo, inc_hi, inc_lo, has, buf = st[0], st[1], st[2], st[3], st[4], st[5]
    for i in range(n - 1, 0, -1):
        mx = np.uint64(i)
        mask = mx
        for sh in (1, 2, 4, 8, 16, 32):
            mask |= mask >> np.uint64(sh)
        while True:
            if mx <= _M32:
                if has != _ZERO:
                    has = _ZERO
                    v = buf
                else:
                    hi, lo, r = _step(hi, lo, inc_hi, inc_lo)
                    has = _ONE
                    buf = r >> _U32
                    v = r & _M32
            else:
                hi, lo, v = _step(hi, lo, inc_hi, inc_lo)
            v &= mask
            if v <= mx:
                break
        j = np.int64(v)
        t = out[j]
        out[j] = out[i]
        out[i] = t
    st[0], st[1], st[4], st[5] = hi, lo, has, buf


@njit(cache=True, parallel=True)
def _population_perms(states, perms, counts, rows, active):
    """Every active network t's epoch order into ``perms[t, :counts[t]]``: its permutation of
    ``counts[t]``, mapped through ``rows[t]`` when ``rows`` has a row per network (its training rows)."""
    for t in prange(states.shape[0]):
        if active[t]:
            p = perms[t, : counts[t]]
            _permutation(states[t], p)
            if rows.shape[0] > 0:
                r = rows[t]
                for i in range(p.shape[0]):
                    p[i] = r[p[i]]


@njit(cache=True)
def _permutations(st, perms, states):
    """Row e of ``perms`` (k, n) = the e-th of k successive ``Generator.permutation(n)`` calls of the generator
    of state ``st`` (what ``Generator.permuted`` draws over the rows of a (k, n) array), ``st`` advanced
    past them all and ``states[e]`` (k, 6) the state after row e: where only the first e orders are used,
    the generator goes on from ``states[e - 1]``."""
    for e in range(perms.shape[0]):
        _permutation(st, perms[e])
        for i in range(st.shape[0]):
            states[e, i] = st[i]


def take_states(rngs):
    """The PCG64 states of numpy Generators as a (k, 6) uint64 array (see ``_next64``), or None if any is
    not a PCG64 (those shuffle in Python)."""
    out = np.zeros((len(rngs), 6), dtype=np.uint64)
    for t, rng in enumerate(rngs):
        s = rng.bit_generator.state
        if s.get("bit_generator") != "PCG64":
            return None
        state, inc = s["state"]["state"], s["state"]["inc"]
        out[t] = (state >> 64, state & _M64, inc >> 64, inc & _M64, s["has_uint32"], s["uinteger"])
    return out


def put_states(rngs, states):
    """Set each Generator to its row of ``states`` (from ``take_states``, advanced)."""
    for rng, st in zip(rngs, states):
        hi, lo, ihi, ilo, has, u = (int(v) for v in st)
        rng.bit_generator.state = {"bit_generator": "PCG64",
                                   "state": {"state": (hi << 64) | lo, "inc": (ihi << 64) | ilo},
                                   "has_uint32": has, "uinteger": u}
