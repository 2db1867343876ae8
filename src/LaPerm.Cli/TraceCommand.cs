using LaPerm.Plots;

namespace LaPerm.Cli;

internal static class TraceCommand
{
    public const string Help = """
        laperm trace DIR --layer NAME [--out PATH]

        Plots the reconnection traffic of one tensor (e.g. dense1/kernel) over the run: at each
        sync, the share of its positions whose value changed since the previous sync and since
        initialisation (recorded by --trace-reconnection, on by default on cpu). Writes PATH.png
        and PATH.svg (default DIR/trace-NAME). Without --layer, lists the traced tensors.

        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var (dir, rest) = PlotCommand.RunDirectory(args, "trace");
        var a = new Arguments(rest, new HashSet<string> { "--layer", "--out" }, new HashSet<string>(), "trace");
        var metrics = RunMetrics.Load(dir);
        if (a.String("--layer") is not { } layer)
        {
            var layers = RunFigures.TracedLayers(metrics);
            if (layers.Count == 0) throw new UsageException($"'{metrics.Path}' has no reconnection traffic (train with --trace-reconnection on).");
            throw new UsageException($"laperm trace needs --layer NAME; traced: {string.Join(", ", layers)}.");
        }
        var figure = RunFigures.Trace(metrics, layer);
        var (png, svg) = FigureRenderer.Save(figure, a.String("--out") ?? Path.Combine(dir, "trace-" + RunFigures.FileSafe(layer)));
        stdout.WriteLine($"wrote {png} and {svg}");
        return 0;
    }
}
