using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests;

public sealed class LaunchJournalTests
{
    [Fact]
    public void A_fault_message_names_the_last_kernel_first_with_its_launch_configuration()
    {
        var journal = new LaunchJournal();
        journal.RecordKernel("relu_forward_v1", new Dim3(40), new Dim3(256), 0);
        journal.RecordKernel("softmax_xent_v1", new Dim3(128, 2), new Dim3(32, 4), 1024);
        string text = journal.DescribeSuspects();
        Assert.StartsWith("2 launch(es) since the last successful synchronisation; the last was kernel softmax_xent_v1 grid (128,2,1) block (32,4,1) shared 1024 B; before it: kernel relu_forward_v1 grid (40,1,1) block (256,1,1) shared 0 B.", text);
        Assert.Contains("CUDA_LAUNCH_BLOCKING=1", text);
    }

    [Fact]
    public void The_ring_keeps_the_most_recent_launches_and_counts_all_of_them()
    {
        var journal = new LaunchJournal();
        int total = LaunchJournal.Capacity + 5;
        for (int i = 0; i < total; i++) journal.RecordKernel($"k{i}", new Dim3((uint)i + 1), new Dim3(32), 0);
        journal.RecordGraph(LaunchJournal.DescribeGraph(["relu_forward_v1", "adam_update_v1"]));
        string text = journal.DescribeSuspects();
        Assert.StartsWith($"{total + 1} launch(es)", text);
        Assert.Contains("the last was CUDA graph replay of 2 kernel launches (relu_forward_v1, adam_update_v1); before it: kernel k" + (total - 1), text);
        Assert.DoesNotContain($"kernel k{total - LaunchJournal.Capacity} ", text); // fell out of the ring
        Assert.Contains($"kernel k{total - LaunchJournal.Capacity + 1} ", text);
        Assert.Contains(", ...", text);
    }

    [Fact]
    public void A_graph_is_described_by_its_kernels_in_first_launch_order_with_counts()
    {
        string[] step = ["gather_v1", "conv_forward", "relu_forward_v1", "conv_forward", "relu_forward_v1", "softmax_xent_v1", "conv_forward"];
        Assert.Equal("CUDA graph replay of 7 kernel launches (gather_v1, conv_forward x3, relu_forward_v1 x2, softmax_xent_v1)",
            LaunchJournal.DescribeGraph(step));
        Assert.Equal("CUDA graph replay of 1 kernel launch (adam_update_v1)", LaunchJournal.DescribeGraph(["adam_update_v1"]));
        Assert.Equal("CUDA graph replay (no kernel of ours in it)", LaunchJournal.DescribeGraph([]));
        // Many distinct kernels: the first GraphNamesShown, then how many more.
        var many = Enumerable.Range(0, LaunchJournal.GraphNamesShown + 3).Select(i => $"k{i}").ToArray();
        string text = LaunchJournal.DescribeGraph(many);
        Assert.Contains($"k{LaunchJournal.GraphNamesShown - 1}, ... 3 more)", text);
        Assert.DoesNotContain($"k{LaunchJournal.GraphNamesShown},", text);
    }

    [Fact]
    public void Clear_forgets_launches_that_completed()
    {
        var journal = new LaunchJournal();
        journal.RecordKernel("axpy_v1", new Dim3(1), new Dim3(1), 0);
        journal.Clear();
        Assert.Equal(0, journal.Count);
        Assert.Equal("no kernel was launched since the last successful synchronisation", journal.DescribeSuspects());
    }

    [Theory]
    [InlineData(700, true)]
    [InlineData(719, true)]
    [InlineData(716, true)]
    [InlineData(2, false)]   // out of memory: a bad call, not a kernel fault
    [InlineData(701, false)] // too many resources requested: reported at the launch itself
    [InlineData(1, false)]
    public void Kernel_faults_are_told_apart_from_bad_calls(int status, bool fault) =>
        Assert.Equal(fault, LaunchJournal.IsKernelFault(status));
}
