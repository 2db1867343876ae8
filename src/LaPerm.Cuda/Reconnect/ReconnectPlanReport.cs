using System.Globalization;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Reconnect;

/// <summary>
/// <c>laperm bench reconnect --plan</c>: the launches each variant makes for a shape set on an
/// H100/H200 (227 KB of shared memory per block), and per launch the blocks per SM that the
/// occupancy model (<see cref="KernelOccupancy"/>, <see cref="SmResources.Hopper"/>) gives with the
/// registers ptxas counted when the build assembled the PTX, and what limits them. Runs nothing:
/// a design view beside Nsight Compute's (the driver compiles the PTX itself and may use a few
/// registers more or less than ptxas did).
/// </summary>
public static class ReconnectPlanReport
{
    /// <summary>An H100's or H200's opt-in shared memory per block (232,448 bytes).</summary>
    public static ReconnectLimits Hopper { get; } = new(232448);

    public static void Write(TextWriter output, IReadOnlyList<ReconnectVariant> variants, IReadOnlyList<(string Spec, IReadOnlyList<ReconnectShape> Shapes)> sets,
        PtxCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(variants);
        ArgumentNullException.ThrowIfNull(sets);
        ArgumentNullException.ThrowIfNull(catalog);
        var resources = catalog.Files.FirstOrDefault(f => f.FileName == "reconnect.ptx")?.Resources ?? new Dictionary<string, PtxKernelResources>();
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine(catalog.Assembler is { } assembler
            ? $"plan for {SmResources.Hopper.Name} (H100/H200: {Hopper.MaxSharedBytesPerBlock} B of shared memory per block); registers from {assembler}"
            : $"plan for {SmResources.Hopper.Name} (H100/H200: {Hopper.MaxSharedBytesPerBlock} B of shared memory per block); registers unknown (the build had no ptxas): blocks per SM without the register limit");
        foreach (var (spec, shapes) in sets)
            foreach (ReconnectVariant variant in variants)
            {
                ReconnectPlan plan = ReconnectPlanner.Plan(variant, shapes, Hopper);
                long elements = shapes.Sum(s => s.Elements);
                output.WriteLine(string.Create(inv, $"plan {spec,-18} variant {(int)variant} {variant,-17} elements {elements,10}  launches {plan.Launches.Count,2}"));
                foreach (ReconnectLaunch l in plan.Launches)
                {
                    string kernel = ReconnectPlanner.KernelName(l);
                    PtxKernelResources? r = resources.GetValueOrDefault(kernel);
                    int shared = l.SharedBytes + (r?.StaticSharedBytes ?? 0);
                    KernelOccupancy o = KernelOccupancy.Of(SmResources.Hopper, l.Threads, r?.Registers ?? 0, shared);
                    string registers = r?.Registers is int n ? n.ToString(inv).PadLeft(3) : "  ?";
                    output.WriteLine(string.Create(inv,
                        $"  {kernel,-30} blocks {l.Blocks,7}  rows <= {l.MaxRowLength,5}  threads {l.Threads,4}  shared {shared,7} B  registers {registers}  blocks/SM {o.BlocksPerSm,2} ({o.LimitedBy})  occupancy {100 * o.Fraction,3:F0} %"));
                }
            }
    }
}
