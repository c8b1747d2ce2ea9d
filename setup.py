"""Build of the _stackless C extension (metadata lives in pyproject.toml).

Environment switches:
  STACKLESS_DEBUG=1   -O0 -g with assertions on
  STACKLESS_ASAN=1    AddressSanitizer (implies the debug flags)
"""
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = [
    "src/_stackless/module.c",
    "src/_stackless/tasklet.c",
    "src/_stackless/channel.c",
    "src/_stackless/scheduler.c",
    "src/_stackless/pystate.c",
    "src/_stackless/slicing.c",
    "src/_stackless/bomb.c",
    "src/_stackless/atomic.c",
    "src/_stackless/preempt.c",
    "src/_stackless/pickling.c",
    "src/_stackless/poller.c",
    # each file assembles to nothing on the other CPU
    "src/_stackless/switch/switch_x86_64.S",
    "src/_stackless/switch/switch_aarch64.S",
]

HEADERS = [
    "src/_stackless/channel.h",
    "src/_stackless/module.h",
    "src/_stackless/pickling.h",
    "src/_stackless/pystate.h",
    "src/_stackless/scheduler.h",
    "src/_stackless/slicing.h",
    "src/_stackless/tasklet.h",
    "src/_stackless/switch/switch.h",
]

compile_args = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
    "-Wno-cast-function-type",
    # stack copying cannot coexist with CET shadow stacks; never advertise them
    "-fcf-protection=none",
    # only PyInit__stackless is exported
    "-fvisibility=hidden",
]
link_args = []
flavour = "release"
if os.environ.get("STACKLESS_DEBUG") or os.environ.get("STACKLESS_ASAN"):
    compile_args += ["-O0", "-g3", "-UNDEBUG"]
    flavour = "debug"
else:
    compile_args += ["-O2"]
if os.environ.get("STACKLESS_ASAN"):
    compile_args += ["-fsanitize=address", "-fno-omit-frame-pointer"]
    link_args += ["-fsanitize=address"]
    flavour = "asan"


class BuildExt(build_ext):
    """Lets the compiler take the .S switch files (setuptools only knows C sources)."""

    def build_extensions(self):
        self.compiler.src_extensions.append(".S")
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "_stackless",
            sources=SOURCES,
            include_dirs=["src/_stackless"],
            depends=HEADERS,
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    ],
    cmdclass={"build_ext": BuildExt},
    # objects of different flavours must never be mixed up
    options={"build": {"build_base": "build/" + flavour}},
)
