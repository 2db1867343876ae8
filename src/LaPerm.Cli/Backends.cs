using LaPerm.Core.Backend;
using LaPerm.Core.Model;
using LaPerm.Cpu;

namespace LaPerm.Cli;

/// <summary>Creates the backend named by --device. Only cpu exists in this build; cuda and emu plug in here.</summary>
internal static class Backends
{
    public static readonly string[] Known = ["cpu", "cuda", "emu"];

    public static IBackend Create(string device, int threads) => device switch
    {
        "cpu" => new CpuBackend(threads),
        "cuda" or "emu" => throw new UsageException($"--device {device} is not available in this build; use --device cpu."),
        _ => throw new UsageException($"--device expects cpu, cuda or emu, got '{device}'."),
    };

    public static int Threads(Arguments a) => a.Int("--threads", 1) ?? Environment.ProcessorCount;

    public static ModelSpec ResolveModel(string name)
    {
        if (name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || File.Exists(name))
        {
            if (!File.Exists(name)) throw new UsageException($"model file '{name}' does not exist.");
            return ModelDefinition.LoadSpec(name);
        }
        return BuiltInModels.TryGet(name)
            ?? throw new UsageException($"unknown model '{name}'; expected one of {string.Join(", ", BuiltInModels.Names)}, resnetD (D = 6n+2) or a JSON model file.");
    }
}
