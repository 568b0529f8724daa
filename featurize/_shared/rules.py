"""Parameter rules: what each estimator parameter accepts, as data.

The estimators validate their parameters from tables of these rules (in ``fit``,
never in ``__init__``), and the command line builds its options from the same
tables: their allowed values, their help, which are offered and compared, and the
conversion of command-line text (``none`` means None wherever None is allowed). The
tables themselves live beside their estimators: ``featurize._images.params``,
``featurize._texts.params``, ``featurize._tuning.params``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from featurize.errors import InvalidParameterError

ON_ERROR = ("raise", "nan")


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What every rule knows besides its values: its help, and the facts the
    command line and the estimators read off it.

    Attributes
    ----------
    help : str
        One line for ``--help``.
    cli : bool
        Offered as a command-line option (where the command embeds).
    comparable : bool
        ``featurize search`` takes several comma-separated values to compare.
    shown : str or None
        How ``--help`` shows the default, where its value says little (None:
        the value itself).
    """

    help: str = ""
    cli: bool = True
    comparable: bool = False
    shown: str | None = None

    choices = None

    def from_text(self, text: str):
        """Command-line text to a value (checked by :meth:`check`): ``none`` is
        None where the rule accepts None."""
        if text.lower() == "none" and self.accepts_none:
            return None
        return self.parse(text)

    accepts_none = False

    def parse(self, text: str):
        return text


@dataclass(frozen=True)
class Options(Rule):
    """One of a fixed set of values (None among them where it is allowed)."""

    values: tuple

    def check(self, name: str, value):
        if isinstance(value, bool) or value not in self.values:
            raise InvalidParameterError(
                f"`{name}` must be one of {list(self.values)}; received {value!r}."
            )
        return value

    @property
    def accepts_none(self) -> bool:
        return None in self.values

    @property
    def choices(self) -> list[str]:
        """The values as typed on a command line."""
        return ["none" if v is None else str(v) for v in self.values]


@dataclass(frozen=True)
class RegistryName(Rule):
    """A name in a registry (case and separators ignored): ``lookup(name)`` returns
    the row, or raises an error listing the known names."""

    lookup: Callable

    def check(self, name: str, value):
        return self.lookup(value).name


@dataclass(frozen=True)
class Boolean(Rule):
    """True or False (numpy booleans included)."""

    def check(self, name: str, value):
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(
                f"`{name}` must be True or False; received {value!r}."
            )
        return bool(value)

    def parse(self, text: str):
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise InvalidParameterError(f"expected true or false; received {text!r}.")
        return text.lower() in ("true", "yes", "1")


@dataclass(frozen=True)
class Anything(Rule):
    """A value its own resolver checks (``cache``: True, None, a folder, a cache)."""

    def check(self, name: str, value):
        return value

    accepts_none = True


@dataclass(frozen=True)
class Number(Rule):
    """A number in ``[minimum, maximum]`` (``maximum`` excluded unless
    ``include_maximum``), an integer where ``integer``, or None where
    ``allow_none``."""

    minimum: float
    maximum: float = float("inf")
    include_maximum: bool = False
    allow_none: bool = False
    integer: bool = False

    def check(self, name: str, value):
        if value is None and self.allow_none:
            return None
        kind = Integral if self.integer else Real
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if ok:
            above = (
                value > self.maximum if self.include_maximum else value >= self.maximum
            )
            ok = value >= self.minimum and not above
        if not ok:
            raise InvalidParameterError(
                f"`{name}` must be {self._range()}"
                f"{' or None' if self.allow_none else ''}; received {value!r}."
            )
        return int(value) if self.integer else float(value)

    def _range(self) -> str:
        if self.integer and self.maximum == float("inf"):
            if self.minimum == 1:
                return "a positive integer"
            return f"an integer >= {self.minimum}"
        close = "]" if self.include_maximum else ")"
        upper = "inf" if self.maximum == float("inf") else self.maximum
        return f"a number in [{self.minimum}, {upper}{close}"

    @property
    def accepts_none(self) -> bool:
        return self.allow_none

    def parse(self, text: str):
        return int(text) if self.integer else float(text)


def Integer(minimum: int, **fields) -> Number:  # noqa: N802 - reads as a rule type
    """An integer of at least ``minimum`` (a :class:`Number` rule)."""
    return Number(minimum, integer=True, **fields)


def validate(estimator, rules: dict) -> dict:
    """Check every parameter of ``estimator`` that has a rule; return them checked.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, what it received and what it accepts.
    """
    params = estimator.get_params(deep=False)
    try:
        return {name: rule.check(name, params[name]) for name, rule in rules.items()}
    except InvalidParameterError as error:
        raise type(error)(f"{type(estimator).__name__}: {error}") from None


def normalize_name(name: str) -> str:
    """Registry key: case, spaces, dashes and underscores do not matter."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())
