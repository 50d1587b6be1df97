"""Warnings that point at the user's line and are not repeated by a search.

Every warning of the package goes through :func:`warn`, which does two things Python's
``warnings.warn(..., stacklevel=n)`` cannot do with a fixed ``n``:

* **Where it points.** The warning is attributed to the first frame outside skadvrec,
  scikit-learn and joblib, so a warning raised while ``GridSearchCV.fit`` scores a candidate
  names the user's ``search.fit(...)`` line, not a library line, whatever the call depth.
* **How often it shows.** Under Python's default action (``"default"``: once per message and
  location) a search repeated the same warning for every candidate and fold: the counts in the
  messages differ, and scikit-learn's parallel helpers reset the ``__warningregistry__`` each
  time they copy the warning filters. Here a warning is shown once per *kind* (``key``, by
  default the message with its numbers removed) and user location. Filters that ask for more
  or less are honoured: under ``"always"`` (``warnings.simplefilter("always")``, which
  ``pytest.warns`` sets) every occurrence is shown, ``"error"`` raises, ``"ignore"`` hides it.

Warnings issued inside joblib / Dask worker processes are shown by those processes, once per
worker and kind.
"""

from __future__ import annotations

import os
import re
import sys
import warnings

__all__ = ["warn"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _library_dirs():
    dirs = [_HERE + os.sep]
    for name in ("sklearn", "joblib"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__file__", None):
            dirs.append(os.path.dirname(os.path.abspath(mod.__file__)) + os.sep)
    return tuple(dirs)


_SEEN: set = set()  # (category, key, filename, lineno) already shown under "default"
_DIGITS = re.compile(r"\d+(\.\d+)?")


def _user_frame():
    """(stacklevel for warnings.warn called from :func:`warn`, the frame it names)."""
    libs = _library_dirs()
    frame = sys._getframe(2)  # the caller of warn()
    level, first_outside, first_level = 2, None, None
    while frame is not None:
        fname = os.path.abspath(frame.f_code.co_filename)
        if not fname.startswith(_HERE + os.sep) and first_outside is None:
            first_outside, first_level = frame, level
        if not fname.startswith(libs):
            return level, frame
        frame = frame.f_back
        level += 1
    # no user frame (e.g. inside a worker process): name the first frame outside skadvrec
    if first_outside is not None:
        return first_level, first_outside
    return 2, sys._getframe(2)


def _action(message, category, module, lineno):
    """The action the current warning filters give this warning (as warnings.warn would)."""
    for action, msg, cat, mod, ln in warnings.filters:
        if ((msg is None or msg.match(message)) and issubclass(category, cat)
                and (mod is None or mod.match(module)) and (ln == 0 or ln == lineno)):
            return action
    return warnings.defaultaction


def warn(message, category=UserWarning, *, key=None):
    """Issue ``message`` attributed to the user's code, once per kind and location.

    Parameters
    ----------
    message : str
    category : Warning subclass, default=UserWarning
    key : str, optional
        What makes two warnings "the same kind"; default the message with its numbers removed.
    """
    level, frame = _user_frame()
    module = frame.f_globals.get("__name__", "<string>")
    lineno = frame.f_lineno
    action = _action(message, category, module, lineno)
    if action in ("default", "module", "once"):
        kind = key if key is not None else _DIGITS.sub("#", message)
        where = (frame.f_code.co_filename, lineno) if action == "default" else (
            (frame.f_code.co_filename,) if action == "module" else ())
        token = (category, kind) + where
        if token in _SEEN:
            return
        _SEEN.add(token)
        # shown now; make Python's own registry agree (the text may repeat later)
        with warnings.catch_warnings():
            warnings.simplefilter("always", category)
            warnings.warn(message, category, stacklevel=level)
        return
    warnings.warn(message, category, stacklevel=level)
