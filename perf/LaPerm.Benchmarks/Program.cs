using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

// dotnet run -c Release --project perf/LaPerm.Benchmarks -- --filter '*'
// The generated benchmark project builds the whole solution; on a busy 2-core machine that
// exceeds BenchmarkDotNet's default two-minute build timeout, hence the longer one.
var config = ManualConfig.Create(DefaultConfig.Instance);
config.BuildTimeout = TimeSpan.FromMinutes(15);
BenchmarkSwitcher.FromAssembly(typeof(LaPerm.Benchmarks.TrainStepBenchmarks).Assembly).Run(args, config);
