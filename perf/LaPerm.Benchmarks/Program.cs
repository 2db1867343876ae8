using BenchmarkDotNet.Running;

// dotnet run -c Release --project perf/LaPerm.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(LaPerm.Benchmarks.TrainStepBenchmarks).Assembly).Run(args);
