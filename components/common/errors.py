"""Exceptions that name the bad input and the problem; the CLI turns them into exit code 2."""

from __future__ import annotations


def one_line(text: str) -> str:
    """Control characters (a newline in a user's field name, say) as escapes, so an error stays one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class SilversetInputError(ValueError):
    """An input (file, flag, table) that a stage cannot use at all.

    The message always names the input and says what is wrong with it, e.g.
    ``manifest 'm.csv': missing required column 'uri'``.
    """

    def __init__(self, input_name: str, problem: str):
        self.input_name = input_name
        self.problem = problem
        super().__init__(f"{one_line(input_name)}: {one_line(problem)}")


class GateFailed(RuntimeError):
    """A gate that did not pass; the CLI exits with code 3."""
