namespace LaPerm.Core.Model;

/// <summary>The published LaPerm architectures (the paper's layer lists) and a few classics.</summary>
public static class BuiltInModels
{
    private static readonly int[] Mnist = [1, 28, 28];
    private static readonly int[] Cifar = [3, 32, 32];

    /// <summary>Names in the order `laperm models` lists them.</summary>
    public static IReadOnlyList<string> Names { get; } =
        ["f1", "f2", "lenet300", "conv7", "conv2", "conv4", "conv13", "resnet20", "resnet50c"];

    /// <summary>
    /// The deepest resnetD: n = 1000, beyond He et al.'s deepest CIFAR ResNet (1202). A depth of
    /// millions was built layer by layer until memory ran out.
    /// </summary>
    public const int MaxResNetDepth = 6 * 1000 + 2;

    /// <summary>A built-in name, "resnetD" for any D = 6n+2 up to <see cref="MaxResNetDepth"/>, or null when unknown.</summary>
    public static ModelSpec? TryGet(string name) => name switch
    {
        "f1" => F1(),
        "f2" => F2(),
        "lenet300" => LeNet300(),
        "conv7" => Conv7(),
        "conv2" => CifarConv("conv2", [[64, 64]], 0.3f),
        "conv4" => CifarConv("conv4", [[64, 64], [128, 128]], 0.3f, 0.4f),
        "conv13" => Conv13(),
        "resnet50c" => ResNet(8) with { Name = "resnet50c" },
        _ when name.StartsWith("resnet", StringComparison.Ordinal) && int.TryParse(name.AsSpan(6), out int depth)
               && depth >= 8 && depth <= MaxResNetDepth && (depth - 2) % 6 == 0 => ResNet((depth - 2) / 6),
        _ => null,
    };

    /// <summary>F1: 784 -> 10, no bias.</summary>
    public static ModelSpec F1() => new("f1", Mnist, [new FlattenSpec(), new DenseSpec(10, Bias: false)]);

    /// <summary>F2: 784-128-64-10 ReLU, no bias, L2 1e-4 on the first two kernels.</summary>
    public static ModelSpec F2() => new("f2", Mnist,
    [
        new FlattenSpec(),
        new DenseSpec(128, Bias: false, L2: 1e-4f), new ReluSpec(),
        new DenseSpec(64, Bias: false, L2: 1e-4f), new ReluSpec(),
        new DenseSpec(10, Bias: false),
    ]);

    /// <summary>LeNet-300-100: 784-300-100-10 ReLU with biases.</summary>
    public static ModelSpec LeNet300() => new("lenet300", Mnist,
    [
        new FlattenSpec(),
        new DenseSpec(300), new ReluSpec(),
        new DenseSpec(100), new ReluSpec(),
        new DenseSpec(10),
    ]);

    /// <summary>Conv7 (MNIST, 325,578 parameters).</summary>
    public static ModelSpec Conv7() => new("conv7", Mnist,
    [
        new Conv2dSpec(32, 3), new ReluSpec(),
        new Conv2dSpec(32, 3), new ReluSpec(),
        new Conv2dSpec(32, 5, Stride: 2, Padding: "same"), new ReluSpec(),
        new DropoutSpec(0.4f),
        new Conv2dSpec(64, 3), new ReluSpec(),
        new Conv2dSpec(64, 3), new ReluSpec(),
        new Conv2dSpec(64, 5, Stride: 2, Padding: "same"), new ReluSpec(),
        new DropoutSpec(0.4f),
        new Conv2dSpec(128, 4), new ReluSpec(),
        new FlattenSpec(),
        new DropoutSpec(0.4f),
        new DenseSpec(10),
    ]);

    private const float CifarL2 = 1e-4f;

    /// <summary>
    /// Conv2 / Conv4: per group [conv same, relu, BN, dropout], [conv same, relu, BN], maxpool 2;
    /// then [dense256, relu, dropout .5, BN], [dense256, relu, BN, dropout .5], dense 10.
    /// L2 1e-4 on every kernel but the last (the authors' Dense(10) has no regularizer).
    /// </summary>
    private static ModelSpec CifarConv(string name, int[][] groups, params float[] groupDropout)
    {
        var layers = new List<LayerSpec>();
        for (int g = 0; g < groups.Length; g++)
        {
            layers.AddRange([new Conv2dSpec(groups[g][0], 3, Padding: "same", L2: CifarL2), new ReluSpec(), new BatchNormSpec(), new DropoutSpec(groupDropout[g])]);
            layers.AddRange([new Conv2dSpec(groups[g][1], 3, Padding: "same", L2: CifarL2), new ReluSpec(), new BatchNormSpec()]);
            layers.Add(new MaxPoolSpec(2));
        }
        layers.AddRange(
        [
            new FlattenSpec(),
            new DenseSpec(256, L2: CifarL2), new ReluSpec(), new DropoutSpec(0.5f), new BatchNormSpec(),
            new DenseSpec(256, L2: CifarL2), new ReluSpec(), new BatchNormSpec(), new DropoutSpec(0.5f),
            new DenseSpec(10),
        ]);
        return new ModelSpec(name, Cifar, layers);
    }

    /// <summary>
    /// Conv13 (VGG-16 style): groups 64,64 | 128,128 | 256x3 | 512x3 | 512x3, each conv + relu + BN,
    /// dropout .3 (first group) / .4 inside groups, maxpool after each group, dropout .5 after the
    /// last (in the authors' notebook; the paper's list leaves it out), then dense512 + relu + BN +
    /// dropout .5, dense 10. L2 1e-4 on every kernel but the last.
    /// </summary>
    public static ModelSpec Conv13()
    {
        int[][] groups = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]];
        var layers = new List<LayerSpec>();
        for (int g = 0; g < groups.Length; g++)
        {
            for (int i = 0; i < groups[g].Length; i++)
            {
                layers.AddRange([new Conv2dSpec(groups[g][i], 3, Padding: "same", L2: CifarL2), new ReluSpec(), new BatchNormSpec()]);
                if (i < groups[g].Length - 1) layers.Add(new DropoutSpec(g == 0 ? 0.3f : 0.4f));
            }
            layers.Add(new MaxPoolSpec(2));
        }
        layers.AddRange(
        [
            new DropoutSpec(0.5f), new FlattenSpec(),
            new DenseSpec(512, L2: CifarL2), new ReluSpec(), new BatchNormSpec(), new DropoutSpec(0.5f),
            new DenseSpec(10),
        ]);
        return new ModelSpec("conv13", Cifar, layers);
    }

    /// <summary>
    /// Keras' CIFAR-10 ResNet v1 of depth 6n+2: conv16 + BN + relu, then three stacks (16, 32, 64
    /// filters) of n blocks [conv3 BN relu, conv3 BN] + shortcut, relu; the first block of stacks
    /// 2 and 3 has stride 2 and a 1x1 stride-2 projection shortcut (conv with bias, no BN).
    /// Every conv has a bias and L2 1e-4; then 8x8 average pool, flatten, dense 10.
    /// </summary>
    public static ModelSpec ResNet(int blocksPerStack)
    {
        var layers = new List<LayerSpec> { new Conv2dSpec(16, 3, Padding: "same", L2: CifarL2), new BatchNormSpec(), new ReluSpec() };
        int filters = 16;
        for (int stack = 0; stack < 3; stack++)
        {
            for (int block = 0; block < blocksPerStack; block++)
            {
                int stride = stack > 0 && block == 0 ? 2 : 1;
                LayerSpec[] main =
                [
                    new Conv2dSpec(filters, 3, stride, "same", L2: CifarL2), new BatchNormSpec(), new ReluSpec(),
                    new Conv2dSpec(filters, 3, 1, "same", L2: CifarL2), new BatchNormSpec(),
                ];
                LayerSpec[] shortcut = stride == 1 ? [] : [new Conv2dSpec(filters, 1, stride, "same", L2: CifarL2)];
                layers.Add(new ResidualSpec(main, shortcut));
                layers.Add(new ReluSpec());
            }
            filters *= 2;
        }
        layers.AddRange([new AvgPoolSpec(8), new FlattenSpec(), new DenseSpec(10)]);
        return new ModelSpec($"resnet{6 * blocksPerStack + 2}", Cifar, layers);
    }
}
