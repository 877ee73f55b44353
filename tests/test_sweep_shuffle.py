"""A population's shuffles, drawn in compiled code, are numpy's ``Generator.permutation``, bitwise."""

import numpy as np

from fastbp._numba.shuffle import _population_perms, put_states, take_states


def _generators():
    gens = [np.random.default_rng(s) for s in (0, 1, 7, 12345, 2**40)]
    gens[2].random(3)  # a state part-way along
    gens[3].integers(0, 10, size=3, dtype=np.uint32)  # a state holding a buffered 32-bit half
    return gens


def test_population_shuffles_are_numpys_permutations_and_leave_the_generators_as_numpy_does():
    ours, ref = _generators(), _generators()
    assert any(g.bit_generator.state["has_uint32"] for g in ref)
    k = len(ours)
    for n in (1, 2, 3, 100, 1437, 5000):
        counts = np.array([n, n - 1 if n > 1 else n, n, n, n], dtype=np.int64)
        active = np.array([True, True, False, True, True])
        perms = np.full((k, n), -1, dtype=np.int64)
        states = take_states(ours)
        _population_perms(states, perms, counts, np.zeros((0, 0), dtype=np.int64), active)
        put_states(ours, states)
        for t in range(k):
            if active[t]:
                np.testing.assert_array_equal(perms[t, : counts[t]], ref[t].permutation(counts[t]))
            else:  # an inactive network draws nothing
                assert (perms[t] == -1).all()
            assert ours[t].bit_generator.state == ref[t].bit_generator.state


def test_population_shuffles_map_through_each_networks_rows():
    ours, ref = _generators()[:2], _generators()[:2]
    rows = [np.arange(10, 30), np.arange(50, 62)[::-1]]
    rows2d = np.zeros((2, 20), dtype=np.int64)
    for i, r in enumerate(rows):
        rows2d[i, : len(r)] = r
    perms = np.zeros((2, 20), dtype=np.int64)
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    states = take_states(ours)
    _population_perms(states, perms, counts, rows2d, np.ones(2, dtype=np.bool_))
    for t, r in enumerate(rows):
        np.testing.assert_array_equal(perms[t, : len(r)], r[ref[t].permutation(len(r))])


def test_other_bit_generators_are_left_to_numpy():
    assert take_states([np.random.default_rng(0), np.random.Generator(np.random.MT19937(0))]) is None


def test_successive_permutations_are_numpys_with_the_state_after_each():
    """``_permutations`` (fit's orders of several epochs per compiled call): row e is numpy's e-th
    ``permutation(n)`` call, and the state recorded after it is the generator's after that call."""
    from fastbp._numba.shuffle import _permutations

    for g, ref in zip(_generators(), _generators()):
        for n in (1, 2, 133, 1437):
            states = take_states([g])
            perms = np.full((4, n), -1, dtype=np.int64)
            after = np.zeros((4, states.shape[1]), dtype=np.uint64)
            _permutations(states[0], perms, after)
            for e in range(4):
                np.testing.assert_array_equal(perms[e], ref.permutation(n))
                probe = np.random.default_rng(0)
                put_states([probe], after[e : e + 1])
                assert probe.bit_generator.state == ref.bit_generator.state
            put_states([g], states)
            assert g.bit_generator.state == ref.bit_generator.state
