#!/usr/bin/env bash
# Builds what gpu-check.sh needs into BUNDLE, for a GPU machine that has no .NET SDK: a .NET
# runtime (about 80 MB, xz-compresses to ~25 MB), the GPU tests and a Release build of the CLI.
# Usage (repository root, on a machine with the .NET 10 SDK):
#   tests/LaPerm.Cuda.Tests/Backend/gpu-bundle.sh BUNDLE
#   (copy BUNDLE to the GPU machine, e.g. as tar.xz)
#   tests/LaPerm.Cuda.Tests/Backend/gpu-check.sh BUNDLE OUTDIR
set -eu
bundle=$1
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
dotnet build -c Release src/LaPerm.Cli
dotnet build tests/LaPerm.Cuda.Tests
rm -rf "$bundle" && mkdir -p "$bundle/dotnet/shared"
cp "$root/dotnet" "$bundle/dotnet/" && cp -r "$root/host" "$bundle/dotnet/"
cp -r "$root/shared/Microsoft.NETCore.App" "$bundle/dotnet/shared/"
cp -r tests/LaPerm.Cuda.Tests/bin/Debug/net10.0 "$bundle/tests"
cp -r src/LaPerm.Cli/bin/Release/net10.0 "$bundle/cli"
cp tests/LaPerm.Cuda.Tests/Backend/gpu-check.sh "$bundle/"
echo "bundle ready: $bundle ($(du -sh "$bundle" | cut -f1))"
