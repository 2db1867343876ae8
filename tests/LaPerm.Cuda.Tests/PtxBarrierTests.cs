using System.Text.RegularExpressions;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests;

/// <summary>
/// A static check of the compiled PTX for the miscompile laperm/device.cuh's barriers guard
/// against: clang moved a load of a __shared__ variable above the bar.sync that publishes it, so
/// threads read what an earlier kernel left in shared memory (gather_batch_v1 faulted on an H200
/// that way; the emulator runs host code and cannot see it). The check: no kernel loads a shared
/// variable by name, one that the kernel also stores, on a path from the kernel's entry that
/// passes no barrier (such a load can only see another kernel's data), nor between the same two
/// barriers as a store of it (it may run before the store it should see).
/// </summary>
public sealed partial class PtxBarrierTests
{
    // gather_batch_v1's shape as clang 14 compiled it without the fences: thread 0 stores s, the
    // others load it on their branch, and both meet at the bar.sync.
    private const string Hoisted = """
        .visible .entry broadcast(
            .param .u64 broadcast_param_0
        )
        {
            .shared .align 4 .u32 _ZZ9broadcastE1s;
            mov.u32 	%r1, %tid.x;
            setp.eq.s32 	%p1, %r1, 0;
            @%p1 bra 	LBB0_2;
            ld.shared.u32 	%r5, [_ZZ9broadcastE1s];
            bra.uni 	LBB0_3;
        LBB0_2:
            ld.global.u32 	%r5, [%rd1];
            st.shared.u32 	[_ZZ9broadcastE1s], %r5;
        LBB0_3:
            bar.sync 	0;
            st.global.u32 	[%rd6], %r5;
            ret;
        }
        """;

    // The same kernel compiled with the fences: the load follows the barrier.
    private const string Fenced = """
        .visible .entry broadcast(
            .param .u64 broadcast_param_0
        )
        {
            .shared .align 4 .u32 _ZZ9broadcastE1s;
            mov.u32 	%r1, %tid.x;
            setp.ne.s32 	%p1, %r1, 0;
            @%p1 bra 	LBB0_2;
            ld.global.u32 	%r2, [%rd1];
            st.shared.u32 	[_ZZ9broadcastE1s], %r2;
        LBB0_2:
            bar.sync 0;
            ld.shared.u32 	%r3, [_ZZ9broadcastE1s];
            st.global.u32 	[%rd6], %r3;
            ret;
        }
        """;

    [Fact]
    public void FindsALoadHoistedAboveTheBarrier()
    {
        var findings = SharedLoadsBeforeBarrier(Hoisted);
        var finding = Assert.Single(findings);
        Assert.Equal("broadcast", finding.Kernel);
        Assert.Contains("ld.shared.u32", finding.Instruction);
        Assert.Contains("_ZZ9broadcastE1s", finding.Instruction);
    }

    [Fact]
    public void AcceptsALoadAfterTheBarrier() => Assert.Empty(SharedLoadsBeforeBarrier(Fenced));

    [Fact]
    public void LoopsAndAnOffsetAreFollowed()
    {
        // The load sits behind a loop (reached by the back edge's fall-through) with an offset
        // into an array, and the only barrier is after it.
        const string ptx = """
            .visible .entry looped()
            {
                .shared .align 4 .b8 _ZZ6loopedE4tile[64];
                mov.u32 	%r1, 0;
            LBB1_1:
                add.s32 	%r1, %r1, 1;
                setp.lt.s32 	%p1, %r1, 4;
                @%p1 bra 	LBB1_1;
                ld.shared.v2.f32 	{%f1, %f2}, [_ZZ6loopedE4tile+8];
                st.shared.f32 	[_ZZ6loopedE4tile+4], %f1;
                bar.sync 	0;
                ret;
            }
            """;
        var finding = Assert.Single(SharedLoadsBeforeBarrier(ptx));
        Assert.Equal("looped", finding.Kernel);
    }

    // A loop whose every round thread 0 publishes s and the others read it: a barrier ahead of the
    // loop, so no load is reachable from the entry; {0} is the others' branch.
    private const string PublishingLoop = """
        .visible .entry rounds(
            .param .u64 rounds_param_0
        )
        {{
            .shared .align 4 .u32 _ZZ6roundsE1s;
            mov.u32 	%r1, %tid.x;
            mov.u32 	%r4, 0;
            bar.sync 	0;
        LBB2_1:
            setp.ne.s32 	%p1, %r1, 0;
            @%p1 bra 	LBB2_3;
            st.shared.u32 	[_ZZ6roundsE1s], %r4;
            bra.uni 	LBB2_4;
        LBB2_3:
        {0}
        LBB2_4:
            bar.sync 	0;
        {1}
            add.s32 	%r4, %r4, %r3;
            bar.sync 	0;
            setp.lt.s32 	%p2, %r4, 100;
            @%p2 bra 	LBB2_1;
            ret;
        }}
        """;

    [Fact]
    public void FindsALoadHoistedAboveItsBarrierInsideALoop()
    {
        // Hoisted: the others load s before the barrier, beside thread 0's store of it.
        string hoisted = string.Format(PublishingLoop, "    ld.shared.u32 	%r3, [_ZZ6roundsE1s];", "");
        var finding = Assert.Single(SharedLoadsBeforeBarrier(hoisted));
        Assert.Equal("rounds", finding.Kernel);
        Assert.Contains("ld.shared.u32 	%r3", finding.Instruction);
        // As written: the load after the barrier, the next round's store after the one that ends it.
        Assert.Empty(SharedLoadsBeforeBarrier(string.Format(PublishingLoop, "", "    ld.shared.u32 	%r3, [_ZZ6roundsE1s];")));
    }

    [Fact]
    public void NoEmbeddedKernelLoadsSharedMemoryBeforeItsBarrier()
    {
        PtxCatalog catalog = PtxCatalog.Active;   // LAPERM_PTX_DIR=DIR: the files there (another compiler's)
        if (catalog.Files.Count == 0) return;   // PtxCatalogTests says whether that is allowed here
        var findings = new List<string>();
        int kernels = 0;
        foreach (PtxFile file in catalog.Files)
        {
            string text = System.Text.Encoding.UTF8.GetString(catalog.ReadPtx(file.FileName));
            kernels += EntryPattern().Matches(text).Count;
            findings.AddRange(SharedLoadsBeforeBarrier(text).Select(f => $"{file.FileName} {f.Kernel}: {f.Instruction}"));
        }
        Assert.True(kernels > 20, $"only {kernels} kernel(s) found in the embedded PTX");
        Assert.True(findings.Count == 0, "shared-memory loads ahead of their barrier:\n" + string.Join('\n', findings));
    }

    public sealed record Finding(string Kernel, string Instruction);

    /// <summary>
    /// Every by-name ld.shared of a variable the kernel also stores that can read another kernel's
    /// or another phase's data: (1) reachable from the entry without a barrier; (2) in the same
    /// barrier interval (the code reachable from the entry or from one barrier without crossing
    /// another) as a store of that variable. A variable one thread publishes must be stored and
    /// loaded on different sides of a barrier; a load moved above its barrier, also inside a loop
    /// (from one iteration's barrier to the store of the next), shares the store's interval.
    /// </summary>
    public static List<Finding> SharedLoadsBeforeBarrier(string ptx)
    {
        var findings = new List<Finding>();
        foreach (Match entry in EntryPattern().Matches(ptx))
        {
            string kernel = entry.Groups[1].Value;
            string body = Body(ptx, entry.Index + entry.Length);
            var lines = body.Split('\n').Select(l => StripComment(l).Trim()).Where(l => l.Length > 0).ToList();
            var stored = lines.Select(l => SharedStore().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet();
            if (stored.Count == 0) continue;
            var blocks = BasicBlocks(lines);
            var labels = new Dictionary<string, int>();
            for (int b = 0; b < blocks.Count; b++)
                if (blocks[b][0].EndsWith(':')) labels[blocks[b][0][..^1]] = b;
            var found = new HashSet<string>();
            void Add(string line)
            {
                if (found.Add(line)) findings.Add(new Finding(kernel, line));
            }
            // The intervals start at the entry and after every barrier.
            var starts = new List<(int Block, int Line)> { (0, 0) };
            for (int b = 0; b < blocks.Count; b++)
                for (int i = 0; i < blocks[b].Count; i++)
                    if (Barrier().IsMatch(blocks[b][i])) starts.Add((b, i + 1));
            foreach (var (startBlock, startLine) in starts)
            {
                var loads = new List<(string Variable, string Line)>();
                var stores = new HashSet<string>();
                var seen = new HashSet<int>();
                var pending = new Stack<(int Block, int Line)>([(startBlock, startLine)]);
                while (pending.Count > 0)
                {
                    var (b, from) = pending.Pop();
                    if (from == 0 && !seen.Add(b)) continue;
                    bool barrier = false;
                    for (int i = from; i < blocks[b].Count; i++)
                    {
                        string line = blocks[b][i];
                        if (Barrier().IsMatch(line)) { barrier = true; break; }
                        if (SharedLoad().Match(line) is { Success: true } load && stored.Contains(load.Groups[1].Value))
                            loads.Add((load.Groups[1].Value, line));
                        if (SharedStore().Match(line) is { Success: true } store) stores.Add(store.Groups[1].Value);
                    }
                    if (barrier) continue;
                    foreach (int next in Successors(blocks, b, labels)) pending.Push((next, 0));
                }
                bool fromEntry = startBlock == 0 && startLine == 0;
                foreach (var (variable, line) in loads)
                    if (fromEntry || stores.Contains(variable)) Add(line);
            }
        }
        return findings;
    }

    private static string Body(string ptx, int from)
    {
        int open = ptx.IndexOf('{', from), depth = 0;
        for (int i = open; i < ptx.Length; i++)
        {
            if (ptx[i] == '{') depth++;
            else if (ptx[i] == '}' && --depth == 0) return ptx[(open + 1)..i];
        }
        throw new FormatException("a kernel body is not closed");
    }

    private static string StripComment(string line) => line.IndexOf("//", StringComparison.Ordinal) is var c and >= 0 ? line[..c] : line;

    // A block starts at a label and ends after a branch, ret or exit (predicated ones too).
    private static List<List<string>> BasicBlocks(List<string> lines)
    {
        var blocks = new List<List<string>>();
        var current = new List<string>();
        foreach (string line in lines)
        {
            if (Label().IsMatch(line))
            {
                if (current.Count > 0) blocks.Add(current);
                current = [line];
                continue;
            }
            current.Add(line);
            if (Branch().IsMatch(line) || Return().IsMatch(line))
            {
                blocks.Add(current);
                current = [];
            }
        }
        if (current.Count > 0) blocks.Add(current);
        return blocks;
    }

    private static IEnumerable<int> Successors(List<List<string>> blocks, int b, Dictionary<string, int> labels)
    {
        string last = blocks[b][^1];
        bool predicated = last.StartsWith('@');
        var branch = Branch().Match(last);
        if (branch.Success)
        {
            yield return labels.TryGetValue(branch.Groups[1].Value, out int target)
                ? target : throw new FormatException($"branch to an unknown label: {last}");
            if (!predicated) yield break;
        }
        else if (Return().IsMatch(last) && !predicated) yield break;
        if (b + 1 < blocks.Count) yield return b + 1;
    }

    [GeneratedRegex(@"\.entry\s+(\w+)\s*\(")]
    private static partial Regex EntryPattern();

    [GeneratedRegex(@"^[$\w]+:$")]
    private static partial Regex Label();

    [GeneratedRegex(@"\bbra(?:\.uni)?\s+([$\w]+)")]
    private static partial Regex Branch();

    [GeneratedRegex(@"^(?:@!?%\w+\s+)?(?:ret|exit)\b")]
    private static partial Regex Return();

    [GeneratedRegex(@"\b(?:bar|barrier)\.(?:sync|red|warp\.sync|cta)")]
    private static partial Regex Barrier();

    // ld.shared[.v2/.v4].type dest, [name(+offset)]: by name, not through a register.
    [GeneratedRegex(@"\bld(?:\.volatile)?\.shared\S*\s+(?:\{[^}]*\}|%\w+)\s*,\s*\[([A-Za-z_$][$\w]*)")]
    private static partial Regex SharedLoad();

    [GeneratedRegex(@"\b(?:(?:st(?:\.volatile)?|red)\.shared\S*\s+|atom\.shared\S*\s+%\w+\s*,\s*)\[([A-Za-z_$][$\w]*)")]
    private static partial Regex SharedStore();
}
