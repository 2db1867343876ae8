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

    /// <summary>Legend in the upper right corner (falling curves) instead of the lower right (rising ones).</summary>
    public bool LegendAtTop { get; init; }

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
            if (panel.YFromZero)
            {
                var (bottom, top) = panel.ZeroBasedYLimits();
                plot.Axes.SetLimitsY(bottom, top);
            }
            if (panel.Legend && color is null && panel.Lines.Count > 0)
                plot.ShowLegend(panel.LegendAtTop ? Alignment.UpperRight : Alignment.LowerRight);
        }
        return multiplot;
    }
}
