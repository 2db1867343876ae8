using LaPerm.Cpu;

namespace LaPerm.Cli;

internal static class InfoCommand
{
    public const string Help = """
        laperm info

        Shows the devices this build can train on.

        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length > 0) throw new UsageException($"'{args[0]}' is not an option of 'laperm info'.");
        using var cpu = new CpuBackend(Environment.ProcessorCount);
        stdout.WriteLine($"laperm {LaPerm.Core.IO.BuildInfo.Version}");
        stdout.WriteLine($"cpu:  {cpu.Description}");
        stdout.WriteLine($"      .NET {Environment.Version}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}");
        stdout.WriteLine(LaPerm.Cuda.CudaInfo.Describe());
        return 0;
    }
}
