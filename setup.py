"""The optional native span pass (``agent_sre.tracing._wirepass``).

Everything else is in pyproject.toml. Without a C compiler (or Python headers) the build
says so and goes on: the package then runs its pure-Python span pass, and says that once
when the daemon starts.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Builds the extension when it can; a failure is a warning, never a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (DistutilsPlatformError, ...)
            _skipped(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # the compiler failed (no headers, ...)
            _skipped(exc)


def _skipped(exc: Exception) -> None:
    print(
        f"agent-sre: the native span pass was not built ({exc}); the pure-Python span pass"
        " will be used",
        file=sys.stderr,
    )


setup(
    ext_modules=[
        Extension(
            "agent_sre.tracing._wirepass",
            ["src/agent_sre/tracing/_wirepass.c"],
            extra_compile_args=[
                "-O2",
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Wno-missing-field-initializers",
                "-Wno-unused-parameter",
            ],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
