#!/usr/bin/env pwsh
<#
.SYNOPSIS
    The one entry point of LaPerm.Native: build, test, bench, ptx, gpu-package.

.DESCRIPTION
    Runs under PowerShell 7 on Linux through the local tool manifest:
        dotnet tool restore
        dotnet pwsh ./build.ps1 [build|test|bench|ptx|gpu-package]

    build        dotnet build -c Release (the native CMake build runs inside it).
    test         build, dotnet test over the solution, the emulator kernel tests once
                 more under a shuffled thread and block order (LAPERM_EMU_SCHEDULE) and
                 the kernel op tests with one warp at a time up to its barrier, the
                 emulator's C++ tests (ctest in the native build folder), the emulator
                 built with AddressSanitizer (its C++ tests, and the kernel tests once more
                 on it except the built-in model runs), the Gpu tests on the stand-in
                 driver (cuda/emu/standin: libcuda.so.1 and libcublas.so.12 on the
                 emulator, so the real-GPU path of the runtime runs without a GPU), then
                 the GPU check script's self-test; the extra test runs run beside each other and
                 beside the native steps, their output printed when each ends;
                 ends with one plain line "N passed, N failed, N skipped" (every xunit
                 test, every ctest test, the self-test) and a non-zero exit code when
                 anything failed.
    bench        the BenchmarkDotNet suite (perf/LaPerm.Benchmarks), `laperm bench
                 train` for f2, lenet300 and conv7, and the PyTorch CPU baseline.
    ptx          only the native part (CMake): builds the PTX and lists it.
    gpu-package  a self-contained folder for a GPU machine without network or .NET
                 (see perf/gpu/README.md); fails when it exceeds -MaxPackageMiB.

    Every step reports on its own: a missing piece (no benchmark project, no CLI verb,
    no CMakeLists.txt, no PyTorch) is reported as "not available" and skipped.
#>
[CmdletBinding()]
param(
    [ValidateSet('build', 'test', 'bench', 'ptx', 'gpu-package')]
    [string] $Task = 'build',
    [string] $Configuration = 'Release',
    # gpu-package: output folder, relative to the repository root.
    [string] $PackageDir = '.pkg/laperm-gpu',
    # The bundle travels with the tracked tree (~13 MiB) under a 64 MiB limit for both.
    [int] $MaxPackageMiB = 50,
    # bench: models for `laperm bench train` and the PyTorch baseline.
    [string[]] $Models = @('f2', 'lenet300', 'conv7'),
    # bench: extra arguments for BenchmarkDotNet (default: every benchmark).
    [string[]] $BenchmarkArgs = @('--filter', '*'),
    # test: skip the GPU check script's self-test.
    [switch] $NoScriptSelfTest,
    # test: skip the emulator's ctest tests.
    [switch] $NoCTest,
    # test: skip the second run of the emulator kernel tests under a shuffled schedule.
    [switch] $NoScheduleRerun,
    # test: skip the run of the kernel tests on the emulator built with AddressSanitizer.
    [switch] $NoSanitizerRerun
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
# Native tools report through their exit codes, which each step checks itself.
$PSNativeCommandUseErrorActionPreference = $false

$RepoRoot = $PSScriptRoot
Set-Location $RepoRoot
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
$env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'

function Write-Step([string] $Message) {
    Write-Host "==> $Message"
}

function Invoke-Native {
    # Runs a native command, echoing it; returns its exit code (never throws on it).
    param([Parameter(Mandatory)] [string] $File, [string[]] $Arguments = @())
    Write-Host "> $File $($Arguments -join ' ')"
    & $File @Arguments | Out-Host
    return $LASTEXITCODE
}

function Invoke-NativeCaptured {
    # As Invoke-Native, also keeping its lines (stderr too): returns @{ Lines; Code }.
    param([Parameter(Mandatory)] [string] $File, [string[]] $Arguments = @())
    Write-Host "> $File $($Arguments -join ' ')"
    $lines = [System.Collections.Generic.List[string]]::new()
    & $File @Arguments 2>&1 | ForEach-Object {
        $text = "$_"
        $lines.Add($text)
        Write-Host $text
    }
    return [pscustomobject]@{ Lines = $lines; Code = $LASTEXITCODE }
}

function Invoke-Build {
    Write-Step "dotnet build -c $Configuration"
    return (Invoke-Native 'dotnet' @('build', 'LaPerm.Native.sln', '-c', $Configuration, '-nologo'))
}

# ---------------------------------------------------------------- test

function Get-TestRunSummary {
    <#
      Sums the Microsoft Testing Platform summaries in `dotnet test` output. Each run
      prints a block "Test run summary: ..." followed by "total: N", "failed: N",
      "succeeded: N", "skipped: N" (and "error: N" when an assembly crashed), ended by
      "duration: ...". Only lines inside such a block count, so a test that prints
      "total: 3" cannot skew the numbers.
    #>
    param([string[]] $Lines)
    $sum = [ordered]@{ Runs = 0; Total = 0; Failed = 0; Succeeded = 0; Skipped = 0; Errors = 0 }
    $inSummary = $false
    foreach ($raw in $Lines) {
        # Strip ANSI escapes in case a terminal forced them on.
        $line = ($raw -replace "`e\[[0-9;]*[A-Za-z]", '').Trim()
        if ($line -match '^Test run summary\b') { $inSummary = $true; $sum.Runs++; continue }
        if (-not $inSummary) { continue }
        if ($line -match '^total:\s*(\d+)$') { $sum.Total += [int]$Matches[1] }
        elseif ($line -match '^failed:\s*(\d+)$') { $sum.Failed += [int]$Matches[1] }
        elseif ($line -match '^succeeded:\s*(\d+)$') { $sum.Succeeded += [int]$Matches[1] }
        elseif ($line -match '^skipped:\s*(\d+)$') { $sum.Skipped += [int]$Matches[1] }
        elseif ($line -match '^errors?:\s*(\d+)$') { $sum.Errors += [int]$Matches[1] }
        elseif ($line -match '^duration:') { $inSummary = $false }
    }
    return [pscustomobject]$sum
}

function Invoke-ScriptSelfTest {
    # perf/gpu/check.sh --self-test runs the GPU check end to end without a GPU (its
    # GPU-only parts must say "not available") and checks the report it wrote.
    $script = Join-Path $RepoRoot 'perf/gpu/check.sh'
    if (-not (Test-Path $script)) {
        Write-Host 'check.sh self-test: not available (perf/gpu/check.sh is absent)'
        return $null
    }
    if (-not (Get-Command bash -ErrorAction SilentlyContinue)) {
        Write-Host 'check.sh self-test: not available (no bash on PATH)'
        return $null
    }
    Write-Step 'bash perf/gpu/check.sh --self-test'
    $code = Invoke-Native 'bash' @($script, '--self-test')
    return ($code -eq 0)
}

# The CMake build folder of the native part: src/LaPerm.Cuda/Native.targets builds there
# during `dotnet build` (LapermNativeDir).
$NativeBuildDir = Join-Path $RepoRoot 'src/LaPerm.Cuda/obj/native'

function Get-CTestSummary {
    <#
      Reads ctest's own summary: "X% tests passed, N tests failed out of M" and, under
      "The following tests did not run:", one line "  K - name (Skipped)" per skipped test
      (a test exiting with its SKIP_RETURN_CODE, e.g. the GPU cross-check without a GPU).
      ctest counts a skipped test in M but not in N, so passed = M - N - skipped.
    #>
    param([string[]] $Lines)
    $total = $null; $failed = 0; $skipped = 0
    foreach ($line in $Lines) {
        if ($line -match '^\s*\d+% tests passed, (\d+) tests? failed out of (\d+)') {
            $failed = [int]$Matches[1]; $total = [int]$Matches[2]
        }
        elseif ($line -match '^\s*\d+ - \S+ \(Skipped\)\s*$') { $skipped++ }
    }
    if ($null -eq $total) { return $null }
    return [pscustomobject]@{ Total = $total; Failed = $failed; Skipped = $skipped; Passed = $total - $failed - $skipped }
}

function Invoke-CTest {
    # The emulator's C++ tests (cuda/emu/tests): built by the native CMake build inside
    # `dotnet build` (or by Build-SanitizedEmulator in its own folder), run here. Returns
    # $null when they are not available.
    param([string] $BuildDir = $NativeBuildDir, [string] $Label = 'emulator C++ tests')
    if (-not (Test-Path (Join-Path $BuildDir 'CTestTestfile.cmake'))) {
        Write-Host "ctest: not available (no CTestTestfile.cmake in $([System.IO.Path]::GetRelativePath($RepoRoot, $BuildDir)): the native part was not built or has no tests)"
        return $null
    }
    if (-not (Get-Command ctest -ErrorAction SilentlyContinue)) {
        Write-Host 'ctest: not available (ctest is not on PATH)'
        return $null
    }
    Write-Step "ctest ($Label)"
    $run = Invoke-NativeCaptured 'ctest' @('--test-dir', $BuildDir, '--output-on-failure', '--timeout', '300')
    $code = $run.Code
    $summary = Get-CTestSummary -Lines $run.Lines
    if ($null -eq $summary) {
        Write-Host "ctest printed no summary (exit code $code): counted as one failure"
        return [pscustomobject]@{ Total = 1; Failed = 1; Skipped = 0; Passed = 0 }
    }
    if ($code -ne 0 -and $summary.Failed -eq 0) {
        Write-Host "ctest exited with code $code although no test failed: counted as one failure"
        $summary.Failed = 1
    }
    return $summary
}

$ShuffleSchedule = 'shuffle:20261127'

function Start-KernelTestPass {
    <#
      Starts one more run of the emulator kernel tests (tests/LaPerm.Cuda.Tests, GPU tests
      left out) as a process of its own with $Environment added to its environment, its
      output kept until Complete-KernelTestPass prints it. Passes run beside each other and
      beside the native builds: the sanitized emulator runs one launch at a time (one core)
      and the shuffled pass is mostly fiber switching, so on two cores running them one
      after the other left a core idle for minutes.
    #>
    param([Parameter(Mandatory)] [string] $Label, [Parameter(Mandatory)] [hashtable] $Environment, [string[]] $ExtraArgs = @(),
          [switch] $GpuTests)
    $project = 'tests/LaPerm.Cuda.Tests/LaPerm.Cuda.Tests.csproj'
    $trait = if ($GpuTests) { '--filter-trait' } else { '--filter-not-trait' }
    $testArgs = @('test', '--project', $project, '-c', $Configuration, '--no-build', '--no-ansi', '--no-progress',
                  $trait, 'Category=Gpu') + $ExtraArgs
    $shown = ($Environment.Keys | Sort-Object | ForEach-Object { "$_=$($Environment[$_])" }) -join ' '
    $info = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($argument in $testArgs) { $info.ArgumentList.Add($argument) }
    foreach ($name in $Environment.Keys) { $info.Environment[$name] = $Environment[$name] }
    $info.WorkingDirectory = $RepoRoot
    $info.UseShellExecute = $false
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    Write-Host "(started: dotnet test $project ($Label); its output follows when it ends)"
    $process = [System.Diagnostics.Process]::Start($info)
    return [pscustomobject]@{
        Label = $Label; Project = $project; Command = "$shown dotnet $($testArgs -join ' ')"; Process = $process
        Stdout = $process.StandardOutput.ReadToEndAsync(); Stderr = $process.StandardError.ReadToEndAsync()
        Started = [DateTime]::UtcNow
    }
}

function Complete-KernelTestPass {
    # Waits for a pass of Start-KernelTestPass, prints its output and returns its counts.
    param([Parameter(Mandatory)] $Pass)
    $Pass.Process.WaitForExit()
    $code = $Pass.Process.ExitCode
    $seconds = ([DateTime]::UtcNow - $Pass.Started).TotalSeconds
    Write-Step "dotnet test $($Pass.Project) ($($Pass.Label); ended after $([int]$seconds) s)"
    Write-Host "> $($Pass.Command)"
    $output = [System.Collections.Generic.List[string]]::new()
    # Joined with a line break: stdout need not end with one, and its last line must not run into stderr's first.
    foreach ($text in (@($Pass.Stdout.Result, $Pass.Stderr.Result) -join "`n") -split "\r?\n") {
        $output.Add($text)
        Write-Host $text
    }
    $Pass.Process.Dispose()
    $summary = Get-TestRunSummary -Lines $output
    $failed = $summary.Failed + $summary.Errors
    if ($summary.Runs -eq 0 -or ($code -ne 0 -and $failed -eq 0)) {
        Write-Host "the run ($($Pass.Label)) printed no summary or exited with code $($code): counted as one failure"
        $failed += 1
    }
    return [pscustomobject]@{ Passed = $summary.Succeeded; Failed = $failed; Skipped = $summary.Skipped }
}

# The emulator built with AddressSanitizer (CMake LAPERM_EMU_SANITIZE): a folder of its own
# beside the plain native build, without PTX (the kernels come from the same sources).
$SanitizedBuildDir = Join-Path $RepoRoot 'src/LaPerm.Cuda/obj/native-asan'

function Build-SanitizedEmulator {
    <#
      Configures and builds the sanitized emulator and its C++ tests. Returns the library, the
      AddressSanitizer runtime it links (which the .NET test host must preload) and the
      ASAN_OPTIONS it must run with (CMake writes them), or a string saying why it is not
      available here (no cmake, or a compiler that cannot link with -fsanitize=address: CMake
      probes that while configuring). A build that fails after that throws: it is a failure.
    #>
    if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) { return 'cmake is not on PATH' }
    if (-not (Get-Command ldd -ErrorAction SilentlyContinue)) { return 'ldd is not on PATH (it finds the AddressSanitizer runtime)' }
    Write-Step 'cmake: the emulator with AddressSanitizer'
    $relative = [System.IO.Path]::GetRelativePath($RepoRoot, $SanitizedBuildDir)
    $code = Invoke-Native 'cmake' @('-S', $RepoRoot, '-B', $SanitizedBuildDir, '-DLAPERM_EMU_SANITIZE=ON',
                                    '-DLAPERM_PTX_COMPILER=none', '-DCMAKE_BUILD_TYPE=Release')
    if ($code -ne 0) { return "configuring $relative failed (exit code $code; see above: a compiler without AddressSanitizer?)" }
    $code = Invoke-Native 'cmake' @('--build', $SanitizedBuildDir, '--parallel', "$([Environment]::ProcessorCount)")
    if ($code -ne 0) { throw "building $relative failed (exit code $code)" }
    $library = Join-Path $SanitizedBuildDir 'liblaperm_emu.so'
    $runtime = & ldd $library 2>$null | ForEach-Object {
        if ("$_" -match '^\s*lib(asan|clang_rt\.asan)\S*\s+=>\s+(/\S+)') { $Matches[2] }   # not "=> not found"
    } | Select-Object -First 1
    if (-not $runtime) { throw "ldd finds no AddressSanitizer runtime linked into $relative/liblaperm_emu.so" }
    $options = (Get-Content (Join-Path $SanitizedBuildDir 'asan-options.txt') -Raw).Trim()
    return [pscustomobject]@{ Library = $library; Runtime = $runtime; Options = $options }
}

function Start-SanitizedEmulatorTests {
    <#
      The emulator's C++ tests and the kernel tests once more, on the emulator built with
      AddressSanitizer: a kernel that reads or writes outside its buffers, its dynamic
      shared memory or a static shared array fails its launch there (the plain emulator sees
      only writes past a buffer's end and just around its dynamic shared memory). The built-in
      model runs are left out: they repeat the kernels the op tests cover at model shapes and
      take four times as long under the sanitizer; so are the launch-argument checks' model runs. Builds and runs the C++ tests here and
      starts the kernel tests (Start-KernelTestPass); returns the counts so far (one skipped
      test when the sanitizer is not available here, one failed test when its build fails)
      and the started pass, or $null.
    #>
    $counts = [pscustomobject]@{ Passed = 0; Failed = 0; Skipped = 0 }
    try { $built = Build-SanitizedEmulator }
    catch {
        Write-Host "AddressSanitizer emulator: $($_.Exception.Message): counted as one failure"
        $counts.Failed = 1
        return [pscustomobject]@{ Counts = $counts; Pass = $null }
    }
    if ($built -is [string]) {
        Write-Host "AddressSanitizer emulator: not available ($built): counted as one skipped test"
        $counts.Skipped = 1
        return [pscustomobject]@{ Counts = $counts; Pass = $null }
    }
    # The ctest tests carry their ASAN_OPTIONS (cuda/emu/tests/CMakeLists.txt).
    $ctest = if ($NoCTest) { $null } else { Invoke-CTest -BuildDir $SanitizedBuildDir -Label 'emulator C++ tests, AddressSanitizer' }
    if ($null -ne $ctest) { $counts.Passed += $ctest.Passed; $counts.Failed += $ctest.Failed; $counts.Skipped += $ctest.Skipped }
    $pass = Start-KernelTestPass -Label 'AddressSanitizer emulator' `
        -Environment @{ LD_PRELOAD = $built.Runtime; LAPERM_EMU_LIBRARY = $built.Library; ASAN_OPTIONS = $built.Options } `
        -ExtraArgs @('--filter-not-class', 'LaPerm.Cuda.Tests.Backend.EmuBuiltInModel*', '--filter-not-class', 'LaPerm.Cuda.Tests.Backend.EmuRestrictArgumentTests')
    return [pscustomobject]@{ Counts = $counts; Pass = $pass }
}

function Invoke-Test {
    $passed = 0; $failed = 0; $skipped = 0

    $buildCode = Invoke-Build
    if ($buildCode -ne 0) {
        Write-Host "build failed (exit code $buildCode): no tests ran"
        Write-Host '0 passed, 1 failed, 0 skipped'
        return 1
    }

    # The kernel test passes below start first and run beside the solution's tests: on two cores
    # the solution's run left one idle for much of its three minutes.

    # The emulator runs threads and blocks in index order, an order that can hide a race (a
    # thread reading what a lower-numbered one wrote without a barrier). A GPU promises no
    # order, so the kernel tests run once more with LAPERM_EMU_SCHEDULE=shuffle (fixed seed:
    # the same order in every run); a race shows up as a mismatch against the CPU reference.
    $passes = [System.Collections.Generic.List[object]]::new()
    if (-not $NoScheduleRerun) {
        # Left out: checks of launch arguments and of the PTX text, which no schedule changes, and
        # the nine built-in models' runs (two minutes: the op, training and graph tests run the
        # same kernels under this schedule; as in the sanitizer pass).
        $passes.Add((Start-KernelTestPass -Label "emulator schedule $ShuffleSchedule" -Environment @{ LAPERM_EMU_SCHEDULE = $ShuffleSchedule } `
            -ExtraArgs @('--filter-not-class', 'LaPerm.Cuda.Tests.Backend.EmuRestrictArgumentTests', '--filter-not-class', 'LaPerm.Cuda.Tests.PtxBarrierTests',
                         '--filter-not-class', 'LaPerm.Cuda.Tests.Backend.EmuBuiltInModel*')))
        # Every thread-by-thread order lets each thread reach its first warp operation before
        # any other runs on past it; on a GPU one warp may run far ahead of another. The kernel
        # op tests (about 15 s) run once more with each warp alone up to its block barrier.
        $passes.Add((Start-KernelTestPass -Label 'emulator schedule warps' -Environment @{ LAPERM_EMU_SCHEDULE = 'warps' } `
            -ExtraArgs @('--filter-class', 'LaPerm.Cuda.Tests.EmulatorKernelTests', '--filter-class', 'LaPerm.Cuda.Tests.Backend.EmuBackendOpTests',
                         '--filter-class', 'LaPerm.Cuda.Tests.Backend.EmuChannelReductionTests', '--filter-class', 'LaPerm.Cuda.Tests.Backend.EmuGuardOpTests',
                         '--filter-class', 'LaPerm.Cuda.Tests.Backend.EmuDataGatherTests', '--filter-class', 'LaPerm.Cuda.Tests.Reconnect.ReconnectEmulatorTests')))
    }

    # The Gpu tests through the stand-in driver (cuda/emu/standin: a libcuda.so.1, a
    # libcublas.so.12 and a libcudnn.so.9 that run on the emulator and the host), so the
    # real-GPU path of the runtime runs here too: every driver, cuBLAS and cuDNN call, the queued
    # streams, events, captures and graph replays. Left out: the large shapes of
    # ReconnectGpuTests (minutes on the emulator; ReconnectEmulatorTests covers the variants) and
    # the nine-model equivalence, with and without cuDNN (6 minutes each; the emulator runs it).
    $standInDriver = Join-Path $RepoRoot 'src/LaPerm.Cuda/obj/native/standin/libcuda.so.1'
    if (Test-Path $standInDriver) {
        $paths = @((Split-Path $standInDriver)) + @(($env:LD_LIBRARY_PATH ?? '') -split ':' | Where-Object { $_ })
        # LAPERM_STANDIN_SUMS=float: the library stand-ins sum as a GPU kernel does (one float FMA
        # chain), so the tests' tolerances are held against a rounding otherwise than the CPU's.
        $passes.Add((Start-KernelTestPass -Label 'Gpu tests on the stand-in driver' -GpuTests `
            -Environment @{ LD_LIBRARY_PATH = ($paths -join ':'); LAPERM_STANDIN_SUMS = 'float' } `
            -ExtraArgs @('--filter-not-class', 'LaPerm.Cuda.Tests.Reconnect.ReconnectGpuTests',
                         '--filter-not-class', 'LaPerm.Cuda.Tests.Backend.GpuBuiltInModelEquivalenceTests',
                         '--filter-not-class', 'LaPerm.Cuda.Tests.Backend.GpuCudnnBuiltInModelEquivalenceTests')))
    }
    else {
        Write-Host 'stand-in driver: not built (no C++ compiler?): its pass of the Gpu tests is counted as one skipped test'
        $skipped += 1
    }

    # The longest pass (about four and a half minutes) starts before the solution's tests too.
    if (-not $NoSanitizerRerun) {
        $sanitized = Start-SanitizedEmulatorTests
        $passed += $sanitized.Counts.Passed; $failed += $sanitized.Counts.Failed; $skipped += $sanitized.Counts.Skipped
        if ($null -ne $sanitized.Pass) { $passes.Add($sanitized.Pass) }
    }

    Write-Step "dotnet test -c $Configuration"
    $run = Invoke-NativeCaptured 'dotnet' @('test', '--solution', 'LaPerm.Native.sln', '-c', $Configuration, '--no-build',
                                            '--no-ansi', '--no-progress')
    $testCode = $run.Code
    $summary = Get-TestRunSummary -Lines $run.Lines
    $passed += $summary.Succeeded
    $failed += $summary.Failed + $summary.Errors
    $skipped += $summary.Skipped
    if ($summary.Runs -eq 0) {
        Write-Host "dotnet test printed no test run summary (exit code $testCode): counted as one failure"
        $failed += 1
    }
    elseif ($testCode -ne 0 -and ($summary.Failed + $summary.Errors) -eq 0) {
        # E.g. a test host that crashed after the summary, or "zero tests ran" (exit 8).
        Write-Host "dotnet test exited with code $testCode although no test failed: counted as one failure"
        $failed += 1
    }

    if (-not $NoCTest) {
        $ctest = Invoke-CTest
        if ($null -ne $ctest) {
            $passed += $ctest.Passed; $failed += $ctest.Failed; $skipped += $ctest.Skipped
        }
    }

    foreach ($pass in $passes) {
        $counts = Complete-KernelTestPass $pass
        $passed += $counts.Passed; $failed += $counts.Failed; $skipped += $counts.Skipped
    }

    if (-not $NoScriptSelfTest) {
        $selfTest = Invoke-ScriptSelfTest
        if ($selfTest -eq $true) { $passed += 1 }
        elseif ($selfTest -eq $false) { $failed += 1; Write-Host 'check.sh self-test: FAILED' }
    }

    # The last line is the one CI reads.
    Write-Host "$passed passed, $failed failed, $skipped skipped"
    return ($(if ($failed -gt 0) { 1 } else { 0 }))
}

# ---------------------------------------------------------------- bench

function Find-TorchPython {
    # First python on PATH that imports torch (Debian's python3-torch lives in the
    # system interpreter, which a version manager's shim may hide).
    $candidates = @(Get-Command python3, python -CommandType Application -All -ErrorAction SilentlyContinue |
                    ForEach-Object Source | Select-Object -Unique)
    foreach ($python in $candidates) {
        & $python -c 'import torch' 2>$null
        if ($LASTEXITCODE -eq 0) { return $python }
    }
    return $null
}

function Get-LapermExecutable {
    $dll = Join-Path $RepoRoot "src/LaPerm.Cli/bin/$Configuration/net10.0/laperm.dll"
    if (Test-Path $dll) { return $dll }
    return $null
}

function Invoke-Bench {
    $failures = 0
    $buildCode = Invoke-Build
    if ($buildCode -ne 0) { Write-Host "build failed (exit code $buildCode)"; return 1 }

    $benchProject = Join-Path $RepoRoot 'perf/LaPerm.Benchmarks/LaPerm.Benchmarks.csproj'
    if (Test-Path $benchProject) {
        Write-Step 'BenchmarkDotNet: perf/LaPerm.Benchmarks'
        $code = Invoke-Native 'dotnet' (@('run', '-c', $Configuration, '--project', $benchProject, '--') + $BenchmarkArgs)
        if ($code -ne 0) { $failures++; Write-Host "BenchmarkDotNet: FAILED (exit code $code)" }
    }
    else {
        Write-Host 'BenchmarkDotNet: not available (perf/LaPerm.Benchmarks is absent)'
    }

    $laperm = Get-LapermExecutable
    $help = if ($laperm) { (& dotnet $laperm bench train --help 2>&1) -join "`n" } else { '' }
    if (-not $laperm) {
        Write-Host 'laperm bench train: not available (the CLI is not built)'
    }
    elseif ($LASTEXITCODE -ne 0 -or $help -notmatch 'laperm bench train') {
        Write-Host 'laperm bench train: not available (this build of laperm has no `bench train` verb)'
    }
    else {
        foreach ($model in $Models) {
            Write-Step "laperm bench train --model $model --batch 128"
            $code = Invoke-Native 'dotnet' @($laperm, 'bench', 'train', '--model', $model, '--batch', '128')
            if ($code -ne 0) { $failures++; Write-Host "laperm bench train ($model): FAILED (exit code $code)" }
        }
        if ($help -match 'laperm bench sync') {
            Write-Step 'laperm bench sync --model conv7'
            $code = Invoke-Native 'dotnet' @($laperm, 'bench', 'sync', '--model', 'conv7')
            if ($code -ne 0) { $failures++; Write-Host "laperm bench sync: FAILED (exit code $code)" }
        }
    }

    $baseline = Join-Path $RepoRoot 'perf/baselines/train_torch_cpu.py'
    $python = Find-TorchPython
    if (-not (Test-Path $baseline)) { Write-Host 'PyTorch CPU baseline: not available (script absent)' }
    elseif (-not $python) { Write-Host 'PyTorch CPU baseline: not available (no python with torch on PATH)' }
    else {
        Write-Step "PyTorch CPU baseline ($python)"
        $json = Join-Path $RepoRoot 'BenchmarkDotNet.Artifacts/train_torch_cpu.json'
        $code = Invoke-Native $python @($baseline, '--models', ($Models -join ','), '--json', $json)
        if ($code -ne 0) { $failures++; Write-Host "PyTorch CPU baseline: FAILED (exit code $code)" }
    }
    return ($(if ($failures -gt 0) { 1 } else { 0 }))
}

# ---------------------------------------------------------------- ptx

function Invoke-Ptx {
    if (-not (Test-Path (Join-Path $RepoRoot 'CMakeLists.txt'))) {
        Write-Host 'ptx: not available (no CMakeLists.txt in the repository root)'
        return 0
    }
    if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) {
        Write-Host 'ptx: FAILED (cmake is not on PATH)'
        return 1
    }
    $binary = Join-Path $RepoRoot 'build/native'
    Write-Step "cmake configure + build ($binary)"
    $code = Invoke-Native 'cmake' @('-S', $RepoRoot, '-B', $binary, "-DCMAKE_BUILD_TYPE=$Configuration")
    if ($code -eq 0) { $code = Invoke-Native 'cmake' @('--build', $binary, '--parallel') }
    if ($code -ne 0) { Write-Host "ptx: FAILED (cmake exit code $code)"; return $code }
    $ptx = @(Get-ChildItem -Path $binary -Recurse -File -Filter '*.ptx' | Sort-Object FullName)
    Write-Host "PTX files ($($ptx.Count)):"
    foreach ($file in $ptx) {
        $kernels = @(Select-String -Path $file.FullName -Pattern '^\s*\.(visible\s+)?\.entry\s+([A-Za-z0-9_]+)' |
                     ForEach-Object { $_.Matches[0].Groups[2].Value })
        Write-Host ("  {0,-60} {1,9:N0} bytes  {2} kernel(s): {3}" -f
            [System.IO.Path]::GetRelativePath($RepoRoot, $file.FullName), $file.Length, $kernels.Count, ($kernels -join ', '))
    }
    return 0
}

# ---------------------------------------------------------------- gpu-package

function Get-DotnetRuntime {
    # The newest Microsoft.NETCore.App of the major version we target, and its root.
    $major = 10
    $found = foreach ($line in (& dotnet --list-runtimes)) {
        if ($line -match '^Microsoft\.NETCore\.App\s+(\S+)\s+\[(.+)\]\s*$') {
            $version = $Matches[1]; $shared = $Matches[2]
            $parsed = $null
            if ([System.Management.Automation.SemanticVersion]::TryParse($version, [ref]$parsed) -and $parsed.Major -eq $major) {
                [pscustomobject]@{ Version = $version; Parsed = $parsed; Root = (Split-Path (Split-Path $shared -Parent) -Parent) }
            }
        }
    }
    return @($found | Sort-Object Parsed -Descending | Select-Object -First 1)
}

function New-RuntimeArchive([string] $Destination, [string] $CacheDir) {
    $runtime = Get-DotnetRuntime
    if (-not $runtime) { throw "gpu-package: no Microsoft.NETCore.App 10.x in ``dotnet --list-runtimes``." }
    $root = $runtime.Root
    $fxr = @(Get-ChildItem (Join-Path $root 'host/fxr') -Directory | Sort-Object { [version]($_.Name -replace '-.*$', '') } -Descending)[0]
    $muxer = Join-Path $root 'dotnet'
    foreach ($required in @($muxer, (Join-Path $root "shared/Microsoft.NETCore.App/$($runtime.Version)"), $fxr.FullName)) {
        if (-not (Test-Path $required)) { throw "gpu-package: the .NET runtime is incomplete: $required is missing." }
    }
    $name = "dotnet-runtime-$($runtime.Version)-fxr$($fxr.Name)-linux-$([System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture.ToString().ToLowerInvariant()).tar.xz"
    $cached = Join-Path $CacheDir $name
    if (-not (Test-Path $cached)) {
        Write-Step "compressing the .NET runtime $($runtime.Version) (host fxr $($fxr.Name)); cached as $name"
        New-Item -ItemType Directory -Force -Path $CacheDir | Out-Null
        $temp = "$cached.tmp"
        $env:XZ_OPT = '-9 -T0'
        $code = Invoke-Native 'tar' @('-C', $root, '-cJf', $temp, 'dotnet', "host/fxr/$($fxr.Name)",
                                      "shared/Microsoft.NETCore.App/$($runtime.Version)")
        Remove-Item Env:XZ_OPT
        if ($code -ne 0) { throw "gpu-package: tar failed with exit code $code." }
        Move-Item -Force $temp $cached
    }
    Copy-Item $cached (Join-Path $Destination 'dotnet-runtime.tar.xz')
    return $runtime.Version
}

function Copy-MergedOutput([string] $Source, [string] $Destination, [string] $Owner, [hashtable] $Origins) {
    <#
      Framework-dependent outputs share most files (LaPerm.*.dll, package dlls); one
      folder holds them all once, keeping the bundle small. Each executable keeps its
      own <name>.deps.json / <name>.runtimeconfig.json. A file that two outputs carry
      with different content would silently break one of them, so that fails here.
    #>
    foreach ($file in Get-ChildItem -Path $Source -Recurse -File) {
        $relative = [System.IO.Path]::GetRelativePath($Source, $file.FullName)
        if ($relative -like '*.pdb' -or $relative -like 'TestResults*') { continue }
        $target = Join-Path $Destination $relative
        if (Test-Path $target) {
            if ((Get-FileHash $target).Hash -ne (Get-FileHash $file.FullName).Hash) {
                throw "gpu-package: '$relative' differs between $($Origins[$relative]) and $Owner; they cannot share one folder."
            }
            continue
        }
        New-Item -ItemType Directory -Force -Path (Split-Path $target -Parent) | Out-Null
        Copy-Item $file.FullName $target
        # Keep the execute bits of the apphosts explicit, whatever Copy-Item does.
        [System.IO.File]::SetUnixFileMode($target, $file.UnixFileMode)
        $Origins[$relative] = $Owner
    }
}

function Invoke-GpuPackage {
    $buildCode = Invoke-Build
    if ($buildCode -ne 0) { Write-Host "gpu-package: FAILED (build exit code $buildCode)"; return 1 }

    $package = Join-Path $RepoRoot $PackageDir
    if (Test-Path $package) { Remove-Item -Recurse -Force $package }
    $app = Join-Path $package 'app'
    New-Item -ItemType Directory -Force -Path $app | Out-Null
    $origins = @{}
    $contents = [System.Collections.Generic.List[string]]::new()

    $cli = Join-Path $RepoRoot 'src/LaPerm.Cli/LaPerm.Cli.csproj'
    $publish = Join-Path $RepoRoot "artifacts/gpu-package/laperm"
    if (Test-Path $publish) { Remove-Item -Recurse -Force $publish }
    Write-Step 'dotnet publish src/LaPerm.Cli (framework-dependent)'
    $code = Invoke-Native 'dotnet' @('publish', $cli, '-c', $Configuration, '--self-contained', 'false',
                                     '-p:PublishSingleFile=false', '-p:PublishTrimmed=false', '-o', $publish, '-nologo')
    if ($code -ne 0) { Write-Host "gpu-package: FAILED (publish exit code $code)"; return 1 }
    Copy-MergedOutput $publish $app 'laperm' $origins
    $contents.Add('app/laperm (CLI, framework-dependent publish)')

    foreach ($project in Get-ChildItem (Join-Path $RepoRoot 'tests') -Recurse -Filter '*.Tests.csproj') {
        $output = Join-Path $project.DirectoryName "bin/$Configuration/net10.0"
        if (-not (Test-Path (Join-Path $output $project.BaseName))) {
            Write-Host "gpu-package: FAILED ($($project.BaseName) has no executable in $output)"
            return 1
        }
        Copy-MergedOutput $output $app $project.BaseName $origins
        $contents.Add("app/$($project.BaseName) (xunit v3 test executable)")
    }

    # The GPU machines are x86-64 Linux: native assets for other platforms (SkiaSharp alone
    # ships fifteen, ~10 MiB each) would overflow the bundle limit. The hosts resolve only
    # their own RID's entries of each .deps.json, so removing the others is safe.
    $runtimes = Join-Path $app 'runtimes'
    if (Test-Path $runtimes) {
        Get-ChildItem $runtimes -Directory | Where-Object { $_.Name -ne 'linux-x64' } | Remove-Item -Recurse -Force
        # The figures (`laperm plot`, profile-weights, trace) are drawn where the runs are read, not
        # on the GPU machine; their native renderer (11 MiB) would leave too little room for the tree.
        Get-ChildItem $runtimes -Recurse -File -Include 'libSkiaSharp.so', 'libHarfBuzzSharp.so' | Remove-Item -Force
        $contents.Add('app/runtimes/linux-x64 only, without the figure renderer (laperm plot/profile-weights/trace do not run from the bundle)')
    }

    # PTX copies for inspection (the CLI embeds its own) and the host emulator.
    $ptxDir = Join-Path $package 'ptx'
    New-Item -ItemType Directory -Force -Path $ptxDir | Out-Null
    $searchRoots = @('build', 'artifacts', 'cuda', 'src') | ForEach-Object { Join-Path $RepoRoot $_ } | Where-Object { Test-Path $_ }
    $ptx = @($searchRoots | ForEach-Object { Get-ChildItem $_ -Recurse -File -Filter '*.ptx' } |
             Where-Object { $_.FullName -notlike "$package*" } | Sort-Object LastWriteTimeUtc -Descending)
    # The product PTX sits in a folder named ptx (the native build's test kernels elsewhere).
    $productPtx = @($ptx | Where-Object { $_.Directory.Name -eq 'ptx' })
    if ($productPtx.Count -gt 0) { $ptx = $productPtx }
    foreach ($file in $ptx) {
        $target = Join-Path $ptxDir $file.Name
        if (-not (Test-Path $target)) { Copy-Item $file.FullName $target }
    }
    if ($ptx.Count -gt 0) {
        # The native build writes manifest.json (files, kernels, compiler) beside its PTX.
        $manifestJson = Join-Path $ptx[0].DirectoryName 'manifest.json'
        if (Test-Path $manifestJson) { Copy-Item $manifestJson (Join-Path $ptxDir 'manifest.json') }
    }
    $contents.Add("ptx/ ($(@(Get-ChildItem $ptxDir -Filter *.ptx).Count) PTX files)")
    $emu = @($searchRoots | ForEach-Object { Get-ChildItem $_ -Recurse -File -Filter 'liblaperm_emu.so' } |
             Sort-Object LastWriteTimeUtc -Descending)
    if ($emu.Count -gt 0) {
        if (-not (Test-Path (Join-Path $app 'liblaperm_emu.so'))) { Copy-Item $emu[0].FullName $app }
        $contents.Add('app/liblaperm_emu.so (host emulator)')
    }
    else {
        Write-Host 'gpu-package: liblaperm_emu.so not found (native part absent): the bundle has no emulator'
    }

    # The emulator-vs-GPU cross-check (every kernel launch on the GPU and in the emulator,
    # compared word for word): cuda/emu/tests/make_gpu_bundle.sh is its one builder; it
    # reuses the native build folder of `dotnet build`. It lands in build/gpucheck, as in
    # the repository, so its run.sh finds cuda/ two folders up when it must recompile.
    $crossCheckScript = Join-Path $RepoRoot 'cuda/emu/tests/make_gpu_bundle.sh'
    if (-not (Test-Path $crossCheckScript)) {
        Write-Host 'gpu-package: cuda/emu/tests/make_gpu_bundle.sh is absent: the bundle has no emulator cross-check'
    }
    elseif (-not (Test-Path (Join-Path $NativeBuildDir 'CMakeCache.txt'))) {
        Write-Host 'gpu-package: the native part was not built (no CMake cache): the bundle has no emulator cross-check'
    }
    else {
        Write-Step 'emulator cross-check bundle (cuda/emu/tests/make_gpu_bundle.sh)'
        $code = Invoke-Native 'sh' @($crossCheckScript, $NativeBuildDir, (Join-Path $package 'build/gpucheck'))
        if ($code -ne 0) { Write-Host "gpu-package: FAILED (make_gpu_bundle.sh exit code $code)"; return 1 }
        $contents.Add('build/gpucheck/ (emulator-vs-GPU cross-check: run.sh, binary, PTX, generated units)')
    }

    # app/ compressed like the runtime (about 21 -> 14 MiB): the bundle and the repository's tracked
    # files travel together under one size limit. check.sh unpacks it to /tmp next to the runtime.
    Write-Step 'compressing app/ into app.tar.xz'
    $env:XZ_OPT = '-9 -T0'
    $code = Invoke-Native 'tar' @('-C', $package, '-cJf', (Join-Path $package 'app.tar.xz'), 'app')
    Remove-Item Env:XZ_OPT
    if ($code -ne 0) { Write-Host "gpu-package: FAILED (tar of app/ exit code $code)"; return 1 }
    Remove-Item -Recurse -Force $app
    $contents.Add('app.tar.xz: the app/ folder above, compressed (check.sh unpacks it)')

    $runtimeVersion = New-RuntimeArchive $package (Join-Path $RepoRoot 'artifacts/cache')
    $contents.Add("dotnet-runtime.tar.xz (Microsoft.NETCore.App $runtimeVersion + host/fxr + dotnet)")

    # Scripts and what they read: the check script, the PyTorch baselines, the reconnection
    # harness (its shapes.json; its nvcc build needs cuda/include), and the kernel and
    # emulator sources the cross-check's run.sh recompiles from when its binary cannot start.
    foreach ($folder in @('perf/gpu', 'perf/baselines', 'perf/reconnect', 'cuda/include', 'cuda/kernels', 'cuda/emu')) {
        $source = Join-Path $RepoRoot $folder
        if (-not (Test-Path $source)) { continue }
        $files = @(Get-ChildItem $source -Recurse -File |
                   Where-Object { $_.Extension -in '.sh', '.py', '.md', '.json', '.cu', '.cuh', '.h', '.cpp' -and $_.Length -lt 1MB })
        foreach ($file in $files) {
            $target = Join-Path $package ([System.IO.Path]::GetRelativePath($RepoRoot, $file.FullName))
            New-Item -ItemType Directory -Force -Path (Split-Path $target -Parent) | Out-Null
            Copy-Item $file.FullName $target
        }
        $contents.Add("$folder/ ($($files.Count) files)")
    }

    $commit = (& git -C $RepoRoot rev-parse --short HEAD 2>$null)
    $dirty = if ((& git -C $RepoRoot status --porcelain 2>$null)) { ' (with uncommitted changes)' } else { '' }
    $manifest = @(
        "LaPerm.Native GPU bundle"
        "commit: $commit$dirty"
        "built (UTC): $([DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ'))"
        "run: bash perf/gpu/check.sh [OUTPUT_DIR]   (from this folder; see perf/gpu/README.md)"
        ""
        "contents:"
    ) + ($contents | ForEach-Object { "  $_" })
    Set-Content -Path (Join-Path $package 'MANIFEST.txt') -Value $manifest

    $bytes = (Get-ChildItem $package -Recurse -File | Measure-Object Length -Sum).Sum
    $mib = $bytes / 1MB
    Write-Host ("bundle: {0} = {1:N1} MiB ({2:N0} bytes, {3} files)" -f $PackageDir, $mib, $bytes,
                @(Get-ChildItem $package -Recurse -File).Count)
    if ($mib -gt $MaxPackageMiB) {
        Write-Host ("gpu-package: FAILED: {0:N1} MiB is over the {1} MiB limit" -f $mib, $MaxPackageMiB)
        return 1
    }
    return 0
}

$exitCode = switch ($Task) {
    'build' { Invoke-Build }
    'test' { Invoke-Test }
    'bench' { Invoke-Bench }
    'ptx' { Invoke-Ptx }
    'gpu-package' { Invoke-GpuPackage }
}
exit [int]$exitCode
