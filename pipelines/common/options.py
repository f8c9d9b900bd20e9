"""Refuse command-line options that neither a pipeline nor Apache Beam knows.

A pipeline command passes the options it does not declare itself to Beam as pipeline options.
Beam only logs "Discarding unparseable args" for an option it does not know and runs with its
defaults, so a misspelled ``--direct_num_worker=4`` would run one worker without a word. Every
pipeline checks its Beam options here first: an unknown option or a bad value is the user's
error, raised as :class:`OptionError` naming the nearest valid option.

Apache Beam is imported inside :func:`check_pipeline_options` only (``pipelines.common`` stays
importable by the decoding sandbox without Beam).
"""
from __future__ import annotations

import difflib
from typing import Iterable, Sequence

__all__ = ["OptionError", "check_pipeline_options", "beam_option_names"]


class OptionError(ValueError):
    """A command-line option is unknown, or its value is not valid."""


def _beam_parser():
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    class _Parser(_BeamArgumentParser):
        def error(self, message):  # argparse would print usage and exit; the caller decides
            raise OptionError(message)

    parser = _Parser(allow_abbrev=False, add_help=False)
    classes = {}
    for cls in PipelineOptions.__subclasses__():  # as Beam itself collects them
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def beam_option_names() -> list[str]:
    """Every option string Apache Beam's pipeline options declare (``--runner``, ...), sorted."""
    return sorted(s for s in _beam_parser()._option_string_actions if s.startswith("--"))


def check_pipeline_options(argv: Sequence[str], own: Iterable[str] = ()) -> None:
    """Check that every argument in ``argv`` is a Beam pipeline option with a valid value.

    Args:
        argv: the arguments a command did not declare itself (they go to ``PipelineOptions``).
        own: the command's own option strings, offered as suggestions too (``--retry_failed``
            is near ``--retry-failed``).

    Raises:
        OptionError: an unknown option (with the nearest valid one when there is one), a stray
            argument, or a value Beam's parser rejects (e.g. ``--direct_num_workers=two``).
    """
    parser = _beam_parser()
    _, unknown = parser.parse_known_args(list(argv))
    if not unknown:
        return
    known = [s for s in parser._option_string_actions if s.startswith("--")] + list(own)
    problems, after_flag = [], False
    for token in unknown:
        if token == "--":
            break
        if token.startswith("-"):
            name = token.split("=", 1)[0]
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            problems.append(f"unknown option {name}" + (f" (did you mean {near[0]}?)" if near else ""))
            after_flag = "=" not in token
        elif after_flag:  # the value of the unknown option just named
            after_flag = False
        else:
            problems.append(f"unexpected argument {token!r}")
    raise OptionError("; ".join(problems) + " (not an option of this command nor of Apache Beam's "
                      "pipeline options; see --help)")
