using System.Globalization;
using LaPerm.Core.IO;
using ScottPlot;
using SkiaSharp;

namespace LaPerm.Plots;

/// <summary>One line of a chart: what tests inspect before anything is drawn.</summary>
public sealed record Series(string Name, double[] X, double[] Y);

/// <summary>One chart panel: titled axes, lines, and vertical markers (LaPerm syncs).</summary>
public sealed record Panel(string Title, string XLabel, string YLabel, IReadOnlyList<Series> Lines, IReadOnlyList<double> Markers, bool Legend = true)
{
    /// <summary>Draw every line in one colour (a weight profile's overlaid rows).</summary>
    public string? SingleColor { get; init; }

    /// <summary>The legend's preferred corner: upper right (falling curves) instead of lower right (rising ones).</summary>
    public bool LegendAtTop { get; init; }

    /// <summary>
    /// Where the legend covers the least of the lines: the corner whose box (45 % of the width,
    /// 35 % of the height of the data's range) holds the fewest points of the lines, their
    /// segments sampled, so a curve that ends high in a falling-loss panel is not hidden by it
    /// (it was, with the corner fixed). Ties go to the preferred corner, then the right side.
    /// </summary>
    public LegendCorner BestLegendCorner()
    {
        LegendCorner[] order = LegendAtTop
            ? [LegendCorner.UpperRight, LegendCorner.LowerRight, LegendCorner.UpperLeft, LegendCorner.LowerLeft]
            : [LegendCorner.LowerRight, LegendCorner.UpperRight, LegendCorner.LowerLeft, LegendCorner.UpperLeft];
        var points = new List<(double X, double Y)>();
        foreach (var line in Lines)
            for (int i = 0; i < line.X.Length; i++)
            {
                if (!double.IsFinite(line.X[i]) || !double.IsFinite(line.Y[i])) continue;
                points.Add((line.X[i], line.Y[i]));
                if (i + 1 < line.X.Length && double.IsFinite(line.X[i + 1]) && double.IsFinite(line.Y[i + 1]))
                    for (int t = 1; t < 8; t++)
                        points.Add((line.X[i] + (line.X[i + 1] - line.X[i]) * t / 8, line.Y[i] + (line.Y[i + 1] - line.Y[i]) * t / 8));
            }
        if (points.Count == 0) return order[0];
        double left = points.Min(p => p.X), right = points.Max(p => p.X);
        var (bottom, top) = YFromZero ? ZeroBasedYLimits() : (points.Min(p => p.Y), points.Max(p => p.Y));
        double width = Math.Max(right - left, 1e-12), height = Math.Max(top - bottom, 1e-12);
        int Covered(LegendCorner corner)
        {
            bool upper = corner is LegendCorner.UpperRight or LegendCorner.UpperLeft, atRight = corner is LegendCorner.UpperRight or LegendCorner.LowerRight;
            return points.Count(p => (atRight ? right - p.X : p.X - left) <= 0.45 * width && (upper ? top - p.Y : p.Y - bottom) <= 0.35 * height);
        }
        return order.MinBy(Covered);
    }

    /// <summary>
    /// The y-axis from 0 up, for values that cannot be negative (shares, counts): autoscaling
    /// centres lines of zeros on 0 and labels the axis with negative percentages. False: autoscale.
    /// </summary>
    public bool YFromZero { get; init; }

    /// <summary>
    /// The y-axis range <see cref="YFromZero"/> asks for: up to 5 % above the highest value (1 when
    /// every value is 0), and 2 % of that below 0, so that a line at 0 is not hidden by the frame;
    /// too little for a tick, so no negative label.
    /// </summary>
    public (double Bottom, double Top) ZeroBasedYLimits()
    {
        double highest = Lines.SelectMany(l => l.Y).Where(double.IsFinite).DefaultIfEmpty(0).Max();
        double top = highest > 0 ? highest * 1.05 : 1;
        return (-0.02 * top, top);
    }
}

/// <summary>A corner of a panel's plot area, for its legend.</summary>
public enum LegendCorner { UpperRight, LowerRight, UpperLeft, LowerLeft }

/// <summary>A grid of panels saved as PNG and SVG.</summary>
public sealed record Figure(IReadOnlyList<Panel> Panels, int Columns, int PanelWidth = 560, int PanelHeight = 380)
{
    public int Rows => (Panels.Count + Columns - 1) / Columns;
    public int Width => Columns * PanelWidth;
    public int Height => Rows * PanelHeight;
}

/// <summary>
/// Renders figures with ScottPlot 5 (SkiaSharp underneath; on Linux its native library comes
/// from SkiaSharp.NativeAssets.Linux.NoDependencies, so no X server or fontconfig is needed).
/// PNG through ScottPlot's own encoder, SVG through Skia's SVG canvas.
/// </summary>
public static class FigureRenderer
{
    public static (string Png, string Svg) Save(Figure figure, string pathWithoutExtension)
    {
        string png = pathWithoutExtension + ".png", svg = pathWithoutExtension + ".svg";
        var multiplot = Build(figure);
        AtomicFile.WriteThroughPath(png, path => multiplot.SavePng(path, figure.Width, figure.Height));
        AtomicFile.WriteThroughPath(svg, path =>
        {
            using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
            using (var canvas = SKSvgCanvas.Create(new SKRect(0, 0, figure.Width, figure.Height), stream))
            {
                canvas.Clear(SKColors.White);
                multiplot.Render(canvas, new ScottPlot.PixelRect(new ScottPlot.PixelSize(figure.Width, figure.Height)));
            }
        });
        return (png, svg);
    }

    /// <summary>A tick label: as ScottPlot writes it, or with an exponent from 100,000 up (8.5E+20).</summary>
    public static string AxisLabel(double value) =>
        Math.Abs(value) >= 1e5 ? value.ToString("0.##E+00", CultureInfo.InvariantCulture) : ScottPlot.TickGenerators.LabelFormatters.Numeric(value);

    private static ScottPlot.Multiplot Build(Figure figure)
    {
        var multiplot = new ScottPlot.Multiplot();
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(figure.Rows, figure.Columns);
        for (int i = 0; i < figure.Panels.Count; i++)
        {
            var panel = figure.Panels[i];
            var plot = i == 0 ? multiplot.GetPlot(0) : multiplot.AddPlot();
            plot.Title(panel.Title, size: 13);
            plot.XLabel(panel.XLabel, size: 12);
            plot.YLabel(panel.YLabel, size: 12);
            foreach (double x in panel.Markers)
            {
                var line = plot.Add.VerticalLine(x, width: 1, color: ScottPlot.Colors.Gray.WithAlpha(0.35));
                line.LinePattern = ScottPlot.LinePattern.Dashed;
            }
            var color = panel.SingleColor is null ? (ScottPlot.Color?)null : ScottPlot.Color.FromHex(panel.SingleColor);
            foreach (var s in panel.Lines)
            {
                var scatter = plot.Add.ScatterLine(s.X, s.Y);
                if (s.X.Length == 1) scatter.MarkerSize = 7;   // a line of one point draws nothing
                if (color is { } c)
                {
                    scatter.Color = c;
                    scatter.LineWidth = 1;
                }
                else
                {
                    scatter.LegendText = s.Name;
                    scatter.LineWidth = 2;
                }
            }
            // Past 100,000 (a diverging run's loss) the default labels are up to 22 digits wide and squeeze the panel.
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = AxisLabel };
            if (panel.YFromZero)
            {
                var (bottom, top) = panel.ZeroBasedYLimits();
                plot.Axes.SetLimitsY(bottom, top);
            }
            if (panel.Legend && color is null && panel.Lines.Count > 0)
                plot.ShowLegend(panel.BestLegendCorner() switch
                {
                    LegendCorner.UpperRight => Alignment.UpperRight,
                    LegendCorner.LowerRight => Alignment.LowerRight,
                    LegendCorner.UpperLeft => Alignment.UpperLeft,
                    _ => Alignment.LowerLeft,
                });
        }
        return multiplot;
    }
}
