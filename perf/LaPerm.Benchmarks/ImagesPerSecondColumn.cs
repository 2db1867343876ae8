using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace LaPerm.Benchmarks;

/// <summary>
/// Training images/s of a step benchmark: its Batch parameter over the median step time, the
/// number `laperm bench train` prints and the README's tables compare with PyTorch.
/// </summary>
public sealed class ImagesPerSecondColumn : IColumn
{
    public string Id => nameof(ImagesPerSecondColumn);
    public string ColumnName => "Images/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Training images per second: Batch / median step time";

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? medianNanoseconds = summary[benchmarkCase]?.ResultStatistics?.Median;
        if (medianNanoseconds is not > 0 || benchmarkCase.Parameters["Batch"] is not int batch) return "-";
        return (batch / (medianNanoseconds.Value * 1e-9)).ToString("N0", CultureInfo.InvariantCulture);
    }

    public override string ToString() => ColumnName;
}

/// <summary>The step benchmarks' configuration: the default one plus <see cref="ImagesPerSecondColumn"/>.</summary>
public sealed class TrainStepConfig : ManualConfig
{
    public TrainStepConfig() => AddColumn(new ImagesPerSecondColumn());
}

/// <summary>
/// GFLOP/s of a <see cref="ConvOpBenchmarks"/> op: twice its multiply-adds over the median time,
/// to read against the FMA peak that `laperm bench train` measures (a core's ceiling).
/// </summary>
public sealed class ConvGflopsColumn : IColumn
{
    public string Id => nameof(ConvGflopsColumn);
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "2 x the op's multiply-adds / median time";

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? medianNanoseconds = summary[benchmarkCase]?.ResultStatistics?.Median;
        if (medianNanoseconds is not > 0 || benchmarkCase.Parameters["Layer"] is not string layer) return "-";
        long multiplyAdds = ConvOpBenchmarks.MultiplyAdds(ConvOpBenchmarks.Geometry(layer));
        return (2.0 * multiplyAdds / medianNanoseconds.Value).ToString("F1", CultureInfo.InvariantCulture);
    }

    public override string ToString() => ColumnName;
}

/// <summary>The convolution op benchmarks' configuration: the default one plus <see cref="ConvGflopsColumn"/>.</summary>
public sealed class ConvOpConfig : ManualConfig
{
    public ConvOpConfig() => AddColumn(new ConvGflopsColumn());
}
