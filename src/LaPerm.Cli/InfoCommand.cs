using LaPerm.Cpu;

namespace LaPerm.Cli;

internal static class InfoCommand
{
    public const string Help = """
        laperm info [--kernels]

        Shows the devices this build can train on. --kernels adds one line per GPU kernel: its PTX
        file, registers per thread and spilled bytes (as ptxas assembled it for sm_90 when the build
        found ptxas), static shared memory and launch bounds.

        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        if (args.FirstOrDefault(a => a != "--kernels") is { } unknown)
            throw new UsageException($"'{unknown}' is not an option of 'laperm info' (it takes --kernels).");
        bool kernels = args.Length > 0;
        using var cpu = new CpuBackend(Environment.ProcessorCount);
        stdout.WriteLine($"laperm {LaPerm.Core.IO.BuildInfo.Version}");
        stdout.WriteLine($"cpu:  {cpu.Description}");
        stdout.WriteLine($"      .NET {Environment.Version}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}");
        stdout.WriteLine(LaPerm.Cuda.CudaInfo.Describe());
        if (kernels) stdout.Write(LaPerm.Cuda.CudaInfo.KernelTable(LaPerm.Cuda.Runtime.PtxCatalog.Active));
        return 0;
    }
}
