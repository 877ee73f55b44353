"""The one way a spec is given: an object, a registered name, or its ``get_config`` dict.

Activations, costs' output layers, optimizers, schedules and a sweep's distributions are small
Python objects that validate their arguments; each kind has a registry of names, and
``parse_spec`` turns "object, name or dict" into an object for all of them, with the same errors.
``get_config()`` turns any of them back into a JSON-serialisable dict that ``parse_spec`` accepts.
"""

__all__ = ["parse_spec"]


def parse_spec(spec, base, registry, argname, example, from_name=None):
    """An instance of ``base`` from ``spec``: the instance itself, a name in ``registry`` (made by
    ``from_name(cls)``, by default ``cls()``), or a dict ``{"name": ..., **arguments}``.

    ``example`` shows a valid object in the TypeError for anything else. Bad arguments in a dict
    raise ValueError naming ``argname``.
    """
    if isinstance(spec, base):
        return spec
    kind = base.__name__.lower()
    if isinstance(spec, str):
        if spec not in registry:
            raise ValueError(f"{argname}: unknown {kind} {spec!r}; expected one of {sorted(registry)}")
        return (from_name or (lambda cls: cls()))(registry[spec])
    if isinstance(spec, dict) and spec.get("name") in registry:
        cls = registry[spec["name"]]
        try:
            return cls(**{k: v for k, v in spec.items() if k != "name"})
        except TypeError as e:
            raise ValueError(f"{argname}: {spec!r} does not fit {cls.__name__}: {e}") from None
    raise TypeError(f"{argname}: expected a {kind} name {sorted(registry)}, a dict with one of them as 'name', "
                    f"or a {base.__name__} such as {example}, got {spec!r}")
