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
