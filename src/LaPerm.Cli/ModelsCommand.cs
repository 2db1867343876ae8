using System.Globalization;
using LaPerm.Core.Model;

namespace LaPerm.Cli;

internal static class ModelsCommand
{
    public const string Help = """
        laperm models [--verbose] [FILE.json | NAME]

        Lists the built-in models with input shape and parameter counts; with a name or a model
        file, describes that model layer by layer (--verbose does this for every model).

        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        bool verbose = args.Contains("--verbose");
        var names = args.Where(x => x != "--verbose").ToList();
        if (names.Any(n => n.StartsWith("--", StringComparison.Ordinal)))
            throw new UsageException($"'{names.First(n => n.StartsWith("--", StringComparison.Ordinal))}' is not an option of 'laperm models'.");
        var specs = names.Count > 0 ? names.Select(Backends.ResolveModel).ToList() : BuiltInModels.Names.Select(n => BuiltInModels.TryGet(n)!).ToList();
        stdout.WriteLine($"{"model",-12} {"input",-10} {"parameters",12} {"bn state",9} {"kernels",8}");
        foreach (var spec in specs)
        {
            var d = new ModelDefinition(spec);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{d.Name,-12} {d.Input,-10} {d.ParameterCount,12:N0} {d.StateCount,9:N0} {d.Parameters.Count(p => p.Kind == ParameterKind.Kernel),8}"));
            if (verbose || names.Count > 0)
            {
                foreach (var l in d.Layers) stdout.WriteLine($"    {l.Name,-10} {l.Describe()}");
                stdout.WriteLine();
            }
        }
        return 0;
    }
}
