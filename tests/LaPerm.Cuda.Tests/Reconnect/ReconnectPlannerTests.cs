using System.Text.Json;
using LaPerm.Cuda.Reconnect;

namespace LaPerm.Cuda.Tests.Reconnect;

public sealed class ReconnectPlannerTests
{
    private static readonly ReconnectLimits Hopper = new(232448);

    [Theory]
    [InlineData(1, ReconnectPath.BlockBucketStaged)]
    [InlineData(32, ReconnectPath.BlockBucketStaged)]
    [InlineData(33, ReconnectPath.BlockBucketStaged)]
    [InlineData(128, ReconnectPath.BlockBucketStaged)]
    [InlineData(129, ReconnectPath.BlockBucketStaged)]
    [InlineData(4608, ReconnectPath.BlockBucketStaged)]
    [InlineData(8192, ReconnectPath.BlockBucketStaged)]
    [InlineData(8193, ReconnectPath.BlockRadix)]
    [InlineData(18000, ReconnectPath.BlockRadix)]
    [InlineData(30000, ReconnectPath.Chunked)]
    public void DispatcherChoosesByRowLength(int length, ReconnectPath expected) =>
        Assert.Equal(expected, ReconnectPlanner.ChoosePath(ReconnectVariant.Auto, length, Hopper));

    [Fact]
    public void ForcedVariantsFallBackToChunkedBeyondSharedMemory()
    {
        var small = ReconnectLimits.Default;
        Assert.Equal(ReconnectPath.BlockBitonic, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBitonic, 4096, small));
        Assert.Equal(ReconnectPath.Chunked, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBitonic, 4097, small));
        Assert.Equal(ReconnectPath.TwoPass, ReconnectPlanner.ChoosePath(ReconnectVariant.TwoPass, 6144, small));
        Assert.Equal(ReconnectPath.Chunked, ReconnectPlanner.ChoosePath(ReconnectVariant.TwoPass, 6145, small));
        Assert.Equal(ReconnectPath.BlockRadix, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockRadix, 3, small));
        Assert.Equal(ReconnectPath.Warp64, ReconnectPlanner.ChoosePath(ReconnectVariant.Warp, 40, small));
        Assert.Equal(ReconnectPath.Warp128, ReconnectPlanner.ChoosePath(ReconnectVariant.Warp, 128, small));
        Assert.Equal(ReconnectPath.BlockBucket, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBucket, 7, small));
        // The dispatcher: staged where its shared memory fits, else the plain bucket kernel.
        Assert.Equal(ReconnectPath.BlockBucketStaged, ReconnectPlanner.ChoosePath(ReconnectVariant.Auto, 2000, small));
        Assert.Equal(ReconnectPath.BlockBucket, ReconnectPlanner.ChoosePath(ReconnectVariant.Auto, 3000, small));
        Assert.Equal(ReconnectPath.BlockBucket, ReconnectPlanner.ChoosePath(ReconnectVariant.Auto, 3402, small));
        Assert.Equal(ReconnectPath.Chunked, ReconnectPlanner.ChoosePath(ReconnectVariant.Auto, 3403, small));
        Assert.Equal(ReconnectPath.BlockBucketStaged, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBucketStaged, 2048, small));
        Assert.Equal(ReconnectPath.BlockRadix, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBucketStaged, 3000, small));
        // The narrow kernel's 256-thread radix fallback needs less than the staged kernel's 512-thread one.
        Assert.Equal(ReconnectPath.BlockBucketNarrow, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBucketNarrow, 3000, small));
        Assert.Equal(ReconnectPath.Chunked, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBucketNarrow, 4096, small));
        Assert.Equal(ReconnectPath.BlockBucketNarrow, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBucketNarrow, 8192, Hopper));
        Assert.Equal(ReconnectPath.BlockRadix, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBucketNarrow, 8193, Hopper));
        Assert.Equal(ReconnectPath.Chunked, ReconnectPlanner.ChoosePath(ReconnectVariant.Chunked, 1, small));
        // Every path's shared memory fits the limit it was chosen under.
        foreach (ReconnectVariant v in Enum.GetValues<ReconnectVariant>())
            foreach (int n in new[] { 1, 7, 129, 1000, 3402, 3403, 4096, 6144, 6145, 30000 })
            {
                ReconnectPlan plan = ReconnectPlanner.Plan(v, [new ReconnectShape("t", 2, n)], small);
                Assert.All(plan.Launches, l => Assert.InRange(l.SharedBytes, 0, small.MaxSharedBytesPerBlock));
            }
    }

    [Fact]
    public void PlanGroupsSizeClassesIntoContiguousTableRanges()
    {
        ReconnectShape[] shapes = [new("a", 3, 9), new("b", 5, 300), new("c", 2, 40), new("d", 7, 500), new("e", 1, 20000), new("f", 4, 10)];
        ReconnectPlan plan = ReconnectPlanner.Plan(ReconnectVariant.Auto, shapes, Hopper);
        Assert.Equal(shapes.Length, plan.Table.Count);
        Assert.Equal(Enumerable.Range(0, shapes.Length), plan.TableOrder.Order());
        int covered = 0;
        foreach (ReconnectLaunch launch in plan.Launches)
        {
            Assert.Equal(covered, launch.TableStart);
            int rows = 0;
            for (int k = launch.TableStart; k < launch.TableStart + launch.TensorCount; k++)
            {
                ReconnectShape s = shapes[plan.TableOrder[k]];
                Assert.Equal(rows, plan.Table[k].FirstRow);
                Assert.Equal(s.Rows, plan.Table[k].Rows);
                Assert.Equal(s.RowLength, plan.Table[k].RowLength);
                Assert.Equal(launch.Path, ReconnectPlanner.ChoosePath(ReconnectVariant.Auto, s.RowLength, Hopper));
                rows += s.Rows;
            }
            Assert.Equal(rows, launch.Rows);
            covered += launch.TensorCount;
        }
        Assert.Equal(shapes.Length, covered);
        // 9, 10 and 40 long share the staged class 256 (its smallest), 300 and 500 share class 512.
        Assert.Equal(3, plan.Launches.Count);
        Assert.Equal([ReconnectPath.BlockBucketStaged, ReconnectPath.BlockBucketStaged, ReconnectPath.Chunked], plan.Launches.Select(l => l.Path));
        Assert.Equal([3, 2, 1], plan.Launches.Select(l => l.TensorCount));
    }

    [Fact]
    public void DispatcherGivesCrowdedClassesToTheNarrowKernel()
    {
        // Class 256 needs 8192 rows in all, class 8192 needs 1024; the rows of one class add up over its tensors.
        static ReconnectPath[] Paths(params ReconnectShape[] shapes) =>
            [.. ReconnectPlanner.Plan(ReconnectVariant.Auto, shapes, Hopper).Launches.Select(l => l.Path)];
        Assert.Equal([ReconnectPath.BlockBucketStaged], Paths(new ReconnectShape("a", 8191, 200)));
        Assert.Equal([ReconnectPath.BlockBucketNarrow], Paths(new ReconnectShape("a", 8192, 200)));
        Assert.Equal([ReconnectPath.BlockBucketNarrow], Paths(new ReconnectShape("a", 4096, 200), new ReconnectShape("b", 4096, 7)));
        Assert.Equal([ReconnectPath.BlockBucketStaged], Paths(new ReconnectShape("a", 1023, 4608)));
        Assert.Equal([ReconnectPath.BlockBucketNarrow], Paths(new ReconnectShape("a", 512, 4608), new ReconnectShape("b", 512, 8000)));
        Assert.Equal([ReconnectPath.BlockBucketStaged], Paths(new ReconnectShape("a", 100000, 1000)));   // staged won class 1024
        // The measured sets: ResNet-50 ImageNet's classes 256 (10,174 rows) and 8192 (1,536) go
        // narrow, conv13's 8192 (2,560) too; conv7's and resnet50c's classes stay staged.
        static ReconnectPath[] SetPaths(IReadOnlyList<ReconnectShape> shapes) =>
            [.. ReconnectPlanner.Plan(ReconnectVariant.Auto, shapes, Hopper).Launches.Select(l => l.Path)];
        var resnet = ReconnectPlanner.Plan(ReconnectVariant.Auto, ReconnectShapes.ResNet50ImageNet(), Hopper).Launches;
        Assert.Equal([(256, ReconnectPath.BlockBucketNarrow), (8192, ReconnectPath.BlockBucketNarrow)],
            resnet.Where(l => l.Path == ReconnectPath.BlockBucketNarrow).Select(l => (ReconnectPlanner.StagedClass(l.MaxRowLength), l.Path)));
        Assert.Equal(10174, resnet.Single(l => l.Path == ReconnectPath.BlockBucketNarrow && l.MaxRowLength <= 256).Rows);
        Assert.Equal(4, resnet.Count(l => l.Path == ReconnectPath.BlockBucketStaged));
        Assert.Equal(1, SetPaths(ReconnectShapes.Conv13()).Count(p => p == ReconnectPath.BlockBucketNarrow));
        Assert.DoesNotContain(ReconnectPath.BlockBucketNarrow, SetPaths(ReconnectShapes.Conv7()));
        Assert.DoesNotContain(ReconnectPath.BlockBucketNarrow, SetPaths(ReconnectShapes.Parse("resnet50c")));
        // A forced variant is never changed.
        Assert.Equal([ReconnectPath.BlockBucketStaged],
            ReconnectPlanner.Plan(ReconnectVariant.BlockBucketStaged, [new("a", 9000, 200)], Hopper).Launches.Select(l => l.Path));
    }

    [Fact]
    public void ChunkedPlanAssignsDisjointScratchAndChunkPrefixes()
    {
        var limits = new ReconnectLimits(4096); // chunks of 512
        ReconnectShape[] shapes = [new("a", 3, 1300), new("b", 2, 512), new("c", 4, 700)];
        ReconnectPlan plan = ReconnectPlanner.Plan(ReconnectVariant.Chunked, shapes, limits);
        Assert.Equal(512, plan.Launches[0].Chunk);
        long scratch = 0;
        var byLaunch = plan.Launches.ToDictionary(l => l.TableStart);
        foreach (ReconnectLaunch l in plan.Launches)
        {
            int chunks = 0;
            for (int k = l.TableStart; k < l.TableStart + l.TensorCount; k++)
            {
                Assert.Equal(scratch, plan.Table[k].ScratchOffset);
                Assert.Equal(chunks, plan.Table[k].FirstChunk);
                scratch += (long)plan.Table[k].Rows * plan.Table[k].RowLength;
                chunks += plan.Table[k].Rows * ((plan.Table[k].RowLength + 511) / 512);
            }
            Assert.Equal(chunks, l.Chunks);
        }
        Assert.Equal(scratch, plan.ScratchElements);
    }

    [Fact]
    public void ModelShapeSetsHaveThePublishedParameterCounts()
    {
        Assert.Equal(325_578, ReconnectShapes.Conv7().Sum(s => s.Elements));
        Assert.Equal(25_557_032, ReconnectShapes.ResNet50ImageNet().Sum(s => s.Elements));
        Assert.Equal(161, ReconnectShapes.ResNet50ImageNet().Count);
        Assert.InRange(ReconnectShapes.ResNetCifar(8).Sum(s => s.Elements), 700_000, 770_000); // ~0.76 M with BN/bias (skipped)
    }

    [Fact]
    public void ShapesJsonForTheBaselinesMatchesTheCSharpSets()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "perf", "reconnect", "shapes.json"))) dir = Path.GetDirectoryName(dir);
        if (dir is null) Assert.Skip("perf/reconnect/shapes.json is not above the test binaries (tests run outside the repository)");
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "perf", "reconnect", "shapes.json")));
        foreach (string name in ReconnectShapes.Names)
        {
            var fromJson = json.RootElement.GetProperty(name).EnumerateArray()
                .Select(e => new ReconnectShape(e[0].GetString()!, e[1].GetInt32(), e[2].GetInt32())).ToList();
            Assert.Equal(ReconnectShapes.Parse(name), fromJson);
        }
    }

    [Theory]
    [InlineData("3:0")]
    [InlineData("x")]
    [InlineData("2:3,4")]
    public void BadShapeSpecsAreRejectedWithTheExpectedForm(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => ReconnectShapes.Parse(spec));
        Assert.Contains("ROWS:LENGTH", e.Message);
    }

    [Fact]
    public void AShapeSetLargerThanOneArrayIsRejectedNamingItsSize()
    {
        // Rows and length were checked apart: 100000:100000 failed later with an OverflowException.
        var e = Assert.Throws<ArgumentException>(() => ReconnectShapes.Parse("100000:100000"));
        Assert.Equal($"--shapes: '100000:100000' holds 10,000,000,000 weights; a shape set holds at most {Array.MaxLength:N0}", e.Message);
        Assert.Equal(100_000L * 21_000, ReconnectShapes.Parse("100000:21000").Sum(s => (long)s.Rows * s.RowLength));
    }

    [Theory]
    [InlineData(1, 32)]
    [InlineData(512, 32)]
    [InlineData(513, 64)]
    [InlineData(1024, 64)]
    [InlineData(2048, 128)]
    [InlineData(4608, 512)]
    public void NarrowBlocksHoldSixteenElementsPerThread(int length, int threads)
    {
        ReconnectPlan plan = ReconnectPlanner.Plan(ReconnectVariant.BlockBucketNarrow, [new ReconnectShape("t", 3, length)], Hopper);
        ReconnectLaunch launch = Assert.Single(plan.Launches);
        Assert.Equal(ReconnectPath.BlockBucketNarrow, launch.Path);
        Assert.Equal(threads, launch.Threads);
        // The kernel of the class holds threads * 16 elements (8 per thread for the 256 class).
        Assert.InRange(length, 1, threads * (ReconnectPlanner.StagedClass(length) == 256 ? 8 : 16));
    }

    [Theory]
    [InlineData(1, 8, 32)]
    [InlineData(256, 8, 32)]
    [InlineData(257, 12, 32)]      // 384 slots in one warp beat 512 in two
    [InlineData(576, 8, 96)]       // 768 slots either way: the more threads
    [InlineData(1152, 12, 96)]
    [InlineData(2304, 8, 288)]
    [InlineData(4096, 8, 512)]
    [InlineData(4097, 12, 352)]
    [InlineData(4608, 12, 384)]
    [InlineData(4609, 16, 320)]    // past the 12-item kernel's 384 threads
    [InlineData(8192, 16, 512)]
    public void SizedBlocksLeaveTheFewestIdleSlots(int length, int items, int threads)
    {
        Assert.Equal((items, threads), ReconnectPlanner.SizedBlock(length));
        // No kernel within its launch bounds holds the row in fewer slots.
        foreach (var (i, maxThreads) in ReconnectPlanner.SizedKernels)
        {
            int warps = (length + 32 * i - 1) / (32 * i);
            if (32 * warps <= maxThreads) Assert.True(32 * warps * i >= items * threads, $"{i} x {32 * warps} holds {length} in fewer slots");
        }
        ReconnectPlan plan = ReconnectPlanner.Plan(ReconnectVariant.BlockBucketSized, [new ReconnectShape("t", 3, length)], Hopper);
        ReconnectLaunch launch = Assert.Single(plan.Launches);
        Assert.Equal((ReconnectPath.BlockBucketSized, threads), (launch.Path, launch.Threads));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReconnectPlanner.SizedBlock(8193));
    }

    [Fact]
    public void SizedVariantGroupsRowsByBlockShape()
    {
        // 2304 and 2300 share 288 x 8; 1152 is 96 x 12; 9000 is past the sized kernels (radix on Hopper).
        ReconnectShape[] shapes = [new("a", 4, 2304), new("b", 2, 1152), new("c", 3, 2300), new("d", 1, 9000)];
        ReconnectPlan plan = ReconnectPlanner.Plan(ReconnectVariant.BlockBucketSized, shapes, Hopper);
        Assert.Equal([(ReconnectPath.BlockRadix, 256, 1), (ReconnectPath.BlockBucketSized, 288, 7), (ReconnectPath.BlockBucketSized, 96, 2)],
            plan.Launches.Select(l => (l.Path, l.Threads, l.Rows)));
        // Shared memory: counters for threads x items / 2 buckets, 68 words and 12 bytes per element
        // (32,528), or the radix fallback's 256 counters per warp and 32 words, 12 bytes per element
        // (36,992), whichever is more.
        Assert.Equal(Math.Max(4 * (288 * 8 / 2 + 68), 4 * (256 * 9 + 32)) + 12 * 2304, plan.Launches[1].SharedBytes);
        Assert.Equal(ReconnectPath.Chunked, ReconnectPlanner.ChoosePath(ReconnectVariant.BlockBucketSized, 4608, ReconnectLimits.Default));
    }

    [Fact]
    public void EveryLaunchOfEveryVariantNamesAKernelOfTheEmbeddedPtx()
    {
        var kernels = LaPerm.Cuda.Runtime.PtxCatalog.Embedded.Files.Single(f => f.FileName == "reconnect.ptx").Kernels.ToHashSet();
        var seen = new HashSet<string>();
        foreach (ReconnectVariant variant in Enum.GetValues<ReconnectVariant>())
            foreach (var limits in new[] { Hopper, ReconnectLimits.Default })
                foreach (var shapes in new[] { ReconnectShapes.ResNet50ImageNet(), ReconnectShapes.Conv13(), ReconnectShapes.Parse("7:20,3:60,2:100,1:6000,2:9000,1:40000") })
                    foreach (ReconnectLaunch l in ReconnectPlanner.Plan(variant, shapes, limits).Launches)
                    {
                        string name = ReconnectPlanner.KernelName(l);
                        Assert.True(kernels.Contains(name), $"variant {variant}: {name} is not in reconnect.ptx");
                        seen.Add(name);
                    }
        // Every sorting kernel is some launch's (the two row passes follow their sorts).
        Assert.Equal(kernels.Except(["reconnect_scatter_rows", "reconnect_chunk_merge"]).Order(), seen.Order());
    }

    [Fact]
    public void TunedPlanIsTheDispatchersWithEachTimedClassOnItsChosenVariant()
    {
        IReadOnlyList<ReconnectShape> resnet = ReconnectShapes.ResNet50ImageNet();
        var classes = ReconnectPlanner.TunedClasses(resnet, Hopper);
        Assert.Equal([256, 512, 1024, 2048, 4096, 8192], classes.Keys);
        Assert.Equal(10174, classes[256].Sum(i => resnet[i].Rows));
        Assert.All(classes, c => Assert.All(c.Value, i => Assert.Equal(c.Key, ReconnectPlanner.StagedClass(resnet[i].RowLength))));
        // Nothing timed (the emulator): exactly the dispatcher's plan.
        static string[] Shape(ReconnectPlan p) => [.. p.Launches.Select(l => $"{ReconnectPlanner.KernelName(l)} {l.Rows} {l.Threads} {l.SharedBytes}")];
        ReconnectPlan auto = ReconnectPlanner.Plan(ReconnectVariant.Auto, resnet, Hopper);
        Assert.Equal(Shape(auto), Shape(ReconnectPlanner.Plan(ReconnectVariant.Tuned, resnet, Hopper)));
        Assert.Equal(Shape(auto), Shape(ReconnectPlanner.Plan(ReconnectVariant.Tuned, resnet, Hopper, new Dictionary<int, ReconnectVariant>())));
        // Class 8192 timed fastest as variant 9, class 256 as 7 (the dispatcher gives it to 8): those
        // change, the rest stay the dispatcher's.
        var chosen = new Dictionary<int, ReconnectVariant> { [8192] = ReconnectVariant.BlockBucketSized, [256] = ReconnectVariant.BlockBucketStaged };
        string[] tuned = Shape(ReconnectPlanner.Plan(ReconnectVariant.Tuned, resnet, Hopper, chosen));
        Assert.Contains("reconnect_bucket_sized_i12 1536 384 67712", tuned);
        Assert.Contains(tuned, l => l.StartsWith("reconnect_bucket_staged_256 10174 256 ", StringComparison.Ordinal));
        Assert.Equal(Shape(auto).Where(l => !l.Contains("_256 ", StringComparison.Ordinal) && !l.Contains("_8192 ", StringComparison.Ordinal)),
            tuned.Where(l => !l.Contains("sized", StringComparison.Ordinal) && !l.Contains("_256 ", StringComparison.Ordinal)));
        // A map is for the tuned variant only.
        Assert.Equal(Shape(auto), Shape(ReconnectPlanner.Plan(ReconnectVariant.Auto, resnet, Hopper, chosen)));
    }

    [Fact]
    public void TunerTakesEachClassesFastestCandidate()
    {
        ReconnectShape[] shapes = [new("a", 40, 256), new("b", 30, 200), new("c", 8, 4608), new("d", 2, 30000)];
        var timed = new List<(ReconnectVariant, int)>();
        // Variant 9 is fastest on the 4608 rows, 8 on the short rows; 7 ties 8 there (the first, 7, stays).
        var choice = ReconnectTuner.Choose(shapes, Hopper, (v, subset) =>
        {
            timed.Add((v, subset.Sum(s => s.Rows)));
            return subset[0].RowLength == 4608 ? (v == ReconnectVariant.BlockBucketSized ? 1 : 2) : (v == ReconnectVariant.BlockBucketSized ? 3 : 1);
        });
        Assert.Equal(new Dictionary<int, ReconnectVariant> { [256] = ReconnectVariant.BlockBucketStaged, [8192] = ReconnectVariant.BlockBucketSized }, choice);
        // Each class once per candidate, with all of its rows (a and b share class 256); the 30,000-long rows are no staged class.
        Assert.Equal([(ReconnectVariant.BlockBucketStaged, 70), (ReconnectVariant.BlockBucketNarrow, 70), (ReconnectVariant.BlockBucketSized, 70),
            (ReconnectVariant.BlockBucketStaged, 8), (ReconnectVariant.BlockBucketNarrow, 8), (ReconnectVariant.BlockBucketSized, 8)], timed);
    }

    [Fact]
    public void VariantSpecsParse()
    {
        Assert.Equal(11, ReconnectBench.ParseVariants("all").Count);
        Assert.Equal([ReconnectVariant.BlockRadix], ReconnectBench.ParseVariants("4"));
        Assert.Equal([ReconnectVariant.BlockBucketNarrow], ReconnectBench.ParseVariants("8"));
        Assert.Equal([ReconnectVariant.BlockBucketSized], ReconnectBench.ParseVariants("9"));
        Assert.Equal([ReconnectVariant.Tuned], ReconnectBench.ParseVariants("10"));
        Assert.Throws<ArgumentException>(() => ReconnectBench.ParseVariants("11"));
    }
}
