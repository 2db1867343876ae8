namespace LaPerm.Cuda.Reconnect;

/// <summary>One synchronised tensor seen as rows: <paramref name="Rows"/> rows of <paramref name="RowLength"/> contiguous elements.</summary>
public sealed record ReconnectShape(string Name, int Rows, int RowLength)
{
    public long Elements => (long)Rows * RowLength;
}

/// <summary>
/// The bench's shape sets: the synchronised tensors of the published models, one row per
/// output unit (dense [out, in], conv [cout, cin*kh*kw], 1-D tensors one row).
/// perf/reconnect/shapes.json holds the same sets for the PyTorch baseline and the native
/// harness; a test keeps the two equal.
/// </summary>
public static class ReconnectShapes
{
    public static IReadOnlyList<string> Names { get; } = ["conv7", "resnet50c", "conv13", "resnet50-imagenet"];

    /// <summary>A named set, or an explicit list "ROWS:LENGTH[,ROWS:LENGTH...]".</summary>
    /// <exception cref="ArgumentException">The spec is neither; the message says what was expected.</exception>
    public static IReadOnlyList<ReconnectShape> Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        switch (spec)
        {
            case "conv7": return Conv7();
            case "resnet50c": return ResNetCifar(8);
            case "conv13": return Conv13();
            case "resnet50-imagenet": return ResNet50ImageNet();
        }
        var shapes = new List<ReconnectShape>();
        foreach (string part in spec.Split(',', StringSplitOptions.TrimEntries))
        {
            string[] fields = part.Split(':');
            if (fields.Length != 2 || !int.TryParse(fields[0], out int rows) || !int.TryParse(fields[1], out int length) || rows < 1 || length < 1)
                throw new ArgumentException(
                    $"--shapes: '{part}' is not a shape; expected one of {string.Join(", ", Names)} or ROWS:LENGTH[,ROWS:LENGTH...] with positive integers");
            shapes.Add(new ReconnectShape($"t{shapes.Count}", rows, length));
        }
        // A set's weights live in one array (and one device buffer) of each kind.
        long total = shapes.Sum(s => (long)s.Rows * s.RowLength);
        if (total > Array.MaxLength)
            throw new ArgumentException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"--shapes: '{spec}' holds {total:N0} weights; a shape set holds at most {Array.MaxLength:N0}"));
        return shapes;
    }

    /// <summary>Conv7 on MNIST: every kernel and bias is synchronised (325,578 weights).</summary>
    public static IReadOnlyList<ReconnectShape> Conv7()
    {
        var shapes = new List<ReconnectShape>();
        int cin = 1;
        (int Filters, int Kernel)[] convs = [(32, 3), (32, 3), (32, 5), (64, 3), (64, 3), (64, 5), (128, 4)];
        for (int i = 0; i < convs.Length; i++)
        {
            shapes.Add(new($"conv{i + 1}.kernel", convs[i].Filters, convs[i].Kernel * convs[i].Kernel * cin));
            shapes.Add(new($"conv{i + 1}.bias", 1, convs[i].Filters));
            cin = convs[i].Filters;
        }
        shapes.Add(new("dense.kernel", 10, 128));
        shapes.Add(new("dense.bias", 1, 10));
        return shapes;
    }

    /// <summary>CIFAR ResNet v1 (6n+2 layers, 16/32/64 filters, 1x1 projection shortcuts); kernels only (skip_bias, skip_bn).</summary>
    public static IReadOnlyList<ReconnectShape> ResNetCifar(int n)
    {
        var shapes = new List<ReconnectShape> { new("conv0.kernel", 16, 27) };
        int cin = 16;
        int[] widths = [16, 32, 64];
        for (int stage = 0; stage < widths.Length; stage++)
        {
            int c = widths[stage];
            for (int b = 0; b < n; b++)
            {
                shapes.Add(new($"stage{stage}.block{b}.conv1.kernel", c, 9 * cin));
                shapes.Add(new($"stage{stage}.block{b}.conv2.kernel", c, 9 * c));
                if (stage > 0 && b == 0) shapes.Add(new($"stage{stage}.block{b}.shortcut.kernel", c, cin));
                cin = c;
            }
        }
        shapes.Add(new("dense.kernel", 10, 64));
        return shapes;
    }

    /// <summary>Conv13 (VGG-16 style) on CIFAR-10; kernels only (skip_bias, skip_bn).</summary>
    public static IReadOnlyList<ReconnectShape> Conv13()
    {
        var shapes = new List<ReconnectShape>();
        int cin = 3;
        int[] widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512];
        for (int i = 0; i < widths.Length; i++)
        {
            shapes.Add(new($"conv{i + 1}.kernel", widths[i], 9 * cin));
            cin = widths[i];
        }
        shapes.Add(new("dense1.kernel", 512, 512));
        shapes.Add(new("dense2.kernel", 10, 512));
        return shapes;
    }

    /// <summary>torchvision ResNet-50: every conv, BN weight and bias, fc weight and bias (25,557,032 weights).</summary>
    public static IReadOnlyList<ReconnectShape> ResNet50ImageNet()
    {
        var shapes = new List<ReconnectShape> { new("conv1.weight", 64, 147), new("bn1.weight", 1, 64), new("bn1.bias", 1, 64) };
        int cin = 64;
        (int Blocks, int Width)[] layers = [(3, 64), (4, 128), (6, 256), (3, 512)];
        for (int li = 0; li < layers.Length; li++)
        {
            int width = layers[li].Width, output = 4 * width;
            for (int b = 0; b < layers[li].Blocks; b++)
            {
                string prefix = $"layer{li + 1}.{b}";
                (string Conv, int Rows, int Length)[] convs = [("conv1", width, cin), ("conv2", width, 9 * width), ("conv3", output, width)];
                foreach (var (conv, rows, length) in convs)
                {
                    string bn = "bn" + conv[4..];
                    shapes.Add(new($"{prefix}.{conv}.weight", rows, length));
                    shapes.Add(new($"{prefix}.{bn}.weight", 1, rows));
                    shapes.Add(new($"{prefix}.{bn}.bias", 1, rows));
                }
                if (b == 0)
                {
                    shapes.Add(new($"{prefix}.downsample.0.weight", output, cin));
                    shapes.Add(new($"{prefix}.downsample.1.weight", 1, output));
                    shapes.Add(new($"{prefix}.downsample.1.bias", 1, output));
                }
                cin = output;
            }
        }
        shapes.Add(new("fc.weight", 1000, 2048));
        shapes.Add(new("fc.bias", 1, 1000));
        return shapes;
    }
}
