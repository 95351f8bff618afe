#!/bin/sh
# SPDX-License-Identifier: MIT
# promtool ARGS..., or exit 77 (meson's SKIP) when promtool is not installed.
command -v promtool >/dev/null || { echo "SKIP: promtool not installed (Debian: prometheus)"; exit 77; }
exec promtool "$@"
