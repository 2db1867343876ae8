using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace LaPerm.Benchmarks;

/// <summary>
/// A rate column: what one benchmark call does (<paramref name="amountPerCall"/> of its case, null
/// when the case has no such parameter) over the median call time, per second.
/// </summary>
public sealed class PerSecondColumn(string name, string legend, string format, Func<BenchmarkCase, double?> amountPerCall) : IColumn
{
    public string Id => nameof(PerSecondColumn) + "." + name;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => legend;

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? medianNanoseconds = summary[benchmarkCase]?.ResultStatistics?.Median;
        if (medianNanoseconds is not > 0 || amountPerCall(benchmarkCase) is not { } amount) return "-";
        return (amount / (medianNanoseconds.Value * 1e-9)).ToString(format, CultureInfo.InvariantCulture);
    }

    public override string ToString() => ColumnName;
}

/// <summary>
/// The step benchmarks' configuration: the default one plus training images per second (the Batch
/// parameter over the median step time), the number `laperm bench train` prints and the README's
/// tables compare with PyTorch.
/// </summary>
public sealed class TrainStepConfig : ManualConfig
{
    public TrainStepConfig() => AddColumn(new PerSecondColumn("Images/s", "Training images per second: Batch / median step time", "N0",
        c => c.Parameters["Batch"] is int batch ? batch : null));
}

/// <summary>
/// The convolution op benchmarks' configuration: the default one plus each op's GFLOP/s (twice its
/// multiply-adds over the median time), to read against the FMA peak that `laperm bench train`
/// measures (a core's ceiling).
/// </summary>
public sealed class ConvOpConfig : ManualConfig
{
    public ConvOpConfig() => AddColumn(new PerSecondColumn("GFLOP/s", "2 x the op's multiply-adds / median time", "F1",
        c => c.Parameters["Layer"] is string layer ? 2e-9 * ConvOpBenchmarks.MultiplyAdds(ConvOpBenchmarks.Geometry(layer)) : null));
}
