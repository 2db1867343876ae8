using System.Text;
using LaPerm.Core.Backend;
using LaPerm.Core.Model;

namespace LaPerm.Core.Tests.Model;

public sealed class ModelDefinitionTests
{
    [Fact]
    public void Conv7HasThePublishedParameterCount() =>
        Assert.Equal(325_578, new ModelDefinition(BuiltInModels.Conv7()).ParameterCount);

    [Theory]
    [InlineData("f1", 784 * 10)]
    [InlineData("f2", 784 * 128 + 128 * 64 + 64 * 10)]
    [InlineData("lenet300", 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10)]
    // Keras' CIFAR ResNet v1 example reports 273,066 trainable parameters for depth 20.
    [InlineData("resnet20", 273_066)]
    public void BuiltInModelsCountTheirParameters(string name, long expected) =>
        Assert.Equal(expected, new ModelDefinition(BuiltInModels.TryGet(name)!).ParameterCount);

    [Fact]
    public void TrainingMultiplyAddsCountForwardWeightAndInputGradients()
    {
        // f2: flatten, then three dense layers; the first computes no input gradient (nothing before it learns).
        Assert.Equal(2L * 784 * 128 + 3L * 128 * 64 + 3L * 64 * 10,
            new ModelDefinition(BuiltInModels.TryGet("f2")!).TrainingMultiplyAddsPerExample);
        // conv7, output positions x filters x taps per layer; conv1 has no input gradient.
        long[] forward = [26 * 26 * 32 * 9, 24 * 24 * 32 * 32 * 9, 12 * 12 * 32 * 32 * 25, 10 * 10 * 64 * 32 * 9,
            8 * 8 * 64 * 64 * 9, 4 * 4 * 64 * 64 * 25, 128 * 64 * 16, 128 * 10];
        var conv7 = new ModelDefinition(BuiltInModels.Conv7());
        Assert.Equal(forward.Sum(), conv7.Layers.Sum(l => l.ForwardMultiplyAdds));
        Assert.Equal(3 * forward.Sum() - forward[0], conv7.TrainingMultiplyAddsPerExample);
    }

    [Fact]
    public void ResNet20DoesAbout41MillionMultiplyAddsPerImageAsPublished()
    {
        // He et al. (2016), section 4.2: the 20-layer CIFAR ResNet has about 0.041 G multiply-adds ("FLOPs").
        var resnet20 = new ModelDefinition(BuiltInModels.TryGet("resnet20")!);
        long forward = resnet20.Layers.Sum(l => l.ForwardMultiplyAdds);
        Assert.InRange(forward, 40_000_000, 42_000_000);
        // Every layer but the stem needs its input gradient, the residual blocks' inner layers too.
        long stem = resnet20.Layers[0].ForwardMultiplyAdds;
        Assert.Equal(32 * 32 * 16 * 3 * 9, stem); // 32x32 outputs, 16 filters of 3x3 over 3 channels
        Assert.Equal(3 * forward - stem, resnet20.TrainingMultiplyAddsPerExample);
    }

    [Fact]
    public void ResNet50cIsTheRoughly076MParameterNetworkOfThePaper()
    {
        var d = new ModelDefinition(BuiltInModels.TryGet("resnet50c")!);
        Assert.InRange(d.ParameterCount, 740_000, 780_000);
        // 1 stem + 3 stacks x 8 blocks x 2 convs + 2 projections + 1 dense.
        Assert.Equal(1 + 48 + 2 + 1, d.Parameters.Count(p => p.Kind == ParameterKind.Kernel));
    }

    [Fact]
    public void EveryKernelRowIsOneOutputNeuronOrFilterAndOneDimensionalTensorsAreOneRow()
    {
        foreach (var name in BuiltInModels.Names)
        {
            var d = new ModelDefinition(BuiltInModels.TryGet(name)!);
            Assert.Equal(d.Parameters.Count, d.Parameters.Select(p => p.Name).Distinct().Count());
            foreach (var p in d.Parameters)
            {
                Assert.Equal(p.Shape.Length, p.Rows * p.RowLength);
                if (p.Kind == ParameterKind.Kernel) Assert.Equal(p.Shape[0], p.Rows);
                else Assert.Equal(1, p.Rows);
            }
        }
        var conv7 = new ModelDefinition(BuiltInModels.Conv7());
        var conv3 = conv7.Parameters.Single(p => p.Name == "conv3/kernel");
        Assert.Equal((32, 32 * 5 * 5), (conv3.Rows, conv3.RowLength));
        Assert.True(conv7.Parameters.Single(p => p.Name == "conv1/kernel").InInputLayer);
        Assert.False(conv3.InInputLayer);
        Assert.Equal(new FeatureShape(128, 1, 1), conv7.Layers.Single(l => l.Name == "conv7").Output);
    }

    [Fact]
    public void JsonModelFilesRoundTripEveryBuiltInModel()
    {
        var dir = Directory.CreateTempSubdirectory();
        try
        {
            foreach (var name in BuiltInModels.Names)
            {
                var spec = BuiltInModels.TryGet(name)!;
                var path = Path.Combine(dir.FullName, name + ".json");
                File.WriteAllText(path, ModelDefinition.ToJson(spec));
                var a = new ModelDefinition(spec);
                var b = new ModelDefinition(ModelDefinition.LoadSpec(path));
                Assert.Equal(a.Parameters.Select(p => (p.Name, p.Shape, p.L2, p.Kind)), b.Parameters.Select(p => (p.Name, p.Shape, p.L2, p.Kind)));
                Assert.Equal(a.Layers.Select(l => l.Describe()), b.Layers.Select(l => l.Describe()));
            }
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Theory]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","units":10,"bogus":1}]}""", "bogus")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"warp"}]}""", "warp")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"conv2d","filters":4,"kernel":3,"padding":"full"},{"type":"dense","units":10}]}""", "padding")]
    [InlineData("""{"name":"x","input":[1,4,4],"layers":[{"type":"conv2d","filters":4,"kernel":5},{"type":"dense","units":10}]}""", "does not fit")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"relu"}]}""", "logits")]
    // Each of these crashed with an exception other than ModelSpecException, or was accepted.
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"units":10}]}""", "layer 1 has no \"type\"; expected one of dense, conv2d")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense"}]}""", "layer 1 (dense) has no \"units\"; a dense layer takes \"units\", \"bias\" (optional)")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"conv2d","filters":4},{"type":"dense","units":10}]}""", "no \"kernel\"")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dropout"},{"type":"dense","units":10}]}""", "no \"rate\"")]
    [InlineData("""{"input":[1,28,28],"layers":[{"type":"dense","units":10}]}""", "no \"name\"")]
    [InlineData("""{"name":null,"input":[1,28,28],"layers":[{"type":"dense","units":10}]}""", "\"name\": null, which must be a value")]
    // The serialiser's own words (.NET type names, zero-based lines) replaced by the file's terms.
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"conv2d","filters":4,"kernel":3,"kernal":3},{"type":"dense","units":10}]}""", "layer 1 (conv2d) has no property 'kernal'; a conv2d layer takes \"filters\", \"kernel\"")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"conv3d","filters":4}]}""", "layer 1 has the unknown type 'conv3d'")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","name":"fc","units":"10"}]}""", "the value of layer 1, \"units\" (line 1): expected a whole number (at most 2147483647)")]
    [InlineData("""{"name":"x","input":[1,28,"y"],"layers":[{"type":"dense","units":10}]}""", "the value of \"input\" item 3 (line 1): expected a whole number (at most 2147483647)")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dropout","rate":true},{"type":"dense","units":10}]}""", "layer 1, \"rate\" (line 1): expected a number")]
    [InlineData("""{"name":"x","input":[1,28,28],"Layers":[{"type":"dropout","rate":true},{"type":"dense","units":10}]}""", "layer 1, \"rate\" (line 1): expected a number")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"residual","name":"b","main":[{"type":"relu"},{"type":"dense"}]},{"type":"dense","units":10}]}""", "layer 1 (residual 'b'), main layer 2 (dense) has no \"units\"")]
    [InlineData("""{"name":"x","input":[1,28,28],"layer":[]}""", "unknown property 'layer'")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","units":10,"Units":20}]}""", "layer 1 (dense) gives \"units\" twice (as \"units\" and \"Units\"); property names ignore case")]
    [InlineData("""{"name":"x","Name":"y","input":[1,28,28],"layers":[{"type":"dense","units":10}]}""", "gives \"name\" twice")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"Dense","units":10}]}""", "layer 1 has the type 'Dense'; layer types are lower case: 'dense'")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"Type":"dense","units":10}]}""", "layer 1 spells \"type\" as \"Type\"")]
    // A "type" that is there but not a string was "spelled as \"type\"".
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":null,"units":10}]}""", "layer 1's \"type\" is null; expected a string, one of dense,")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":3}]}""", "layer 1's \"type\" is 3; expected a string, one of dense,")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","units":1e20}]}""", "layer 1, \"units\" (line 1): expected a whole number (at most 2147483647)")]
    [InlineData("{\"name\":\"x\",\n\"input\":[1,28,28] \"layers\":[]}", "is not valid JSON (line 2, column 19)")]
    [InlineData("""{"name":"../up","input":[1,28,28],"layers":[{"type":"dense","units":10}]}""", "model name '../up'")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","units":10,"name":""}]}""", "layer name ''")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","units":10,"units":20}]}""", "layer 1 (dense) gives \"units\" twice; give each property once")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"residual","main":[{"type":"dense","name":"fc","units":10,"units":20}]},{"type":"dense","units":10}]}""", "layer 1 (residual), main layer 1 (dense 'fc') gives \"units\" twice")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"residual","main":[{"type":"relu"}],"shortcut":[{"type":"dense","units":[1,"x"]}]},{"type":"dense","units":10}]}""", "the value of layer 1, shortcut layer 1, \"units\" (line 1): expected a whole number")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","units":10,"l2":-1}]}""", "l2")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"maxpool","pool":0},{"type":"dense","units":10}]}""", "pool size and stride must be positive")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"avgpool","pool":2,"stride":0},{"type":"dense","units":10}]}""", "pool size and stride must be positive")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"avgpool","pool":50},{"type":"dense","units":10}]}""", "does not fit")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"flatten"},{"type":"dense","units":10},{"type":"maxpool","pool":2},{"type":"dense","units":10}]}""", "a 2x2 pool does not fit a 1x1 input (its input is a vector of 10 values")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"conv2d","filters":4,"kernel":30,"stride":5},{"type":"dense","units":10}]}""", "does not fit")]
    [InlineData("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","units":3000000}]}""", "more than 2147483647")]
    [InlineData("""{"name":"x","input":[3000,1000,1000],"layers":[{"type":"dense","units":10}]}""", "values per example")]
    public void BadModelFilesGiveOneSentenceNamingTheProblem(string json, string expected)
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, json);
            var e = Assert.Throws<ModelSpecException>(() => new ModelDefinition(ModelDefinition.LoadSpec(path)));
            Assert.Contains(expected, e.Message, StringComparison.OrdinalIgnoreCase);
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void AModelFileThatIsNotUtf8IsRefusedNamingTheByteAndABomIsSkipped()
    {
        // A layer name in Latin-1 ("caf\xE9") was read as "caf\uFFFD": a name other than the one written.
        var path = Path.GetTempFileName();
        try
        {
            byte[] head = Encoding.UTF8.GetBytes("""{"name":"x","input":[1,28,28],"layers":[{"type":"dense","units":10,"name":"caf""");
            byte[] tail = Encoding.UTF8.GetBytes("\"}]}");
            File.WriteAllBytes(path, [.. head, 0xE9, .. tail]);
            var e = Assert.Throws<ModelSpecException>(() => ModelDefinition.LoadSpec(path));
            Assert.Equal($"model file '{path}' is not UTF-8 text (byte {head.Length}); model files are UTF-8 JSON", e.Message);

            File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. head, .. Encoding.UTF8.GetBytes("\u00E9"), .. tail]);
            Assert.Equal("caf\u00E9", Assert.IsType<DenseSpec>(ModelDefinition.LoadSpec(path).Layers[0]).Name);
            // UTF-16 with its byte-order mark (Windows PowerShell 5 writes it) reads without loss, in either byte order.
            string text = Encoding.UTF8.GetString([.. head, .. Encoding.UTF8.GetBytes("\u00E9"), .. tail]);
            foreach (var utf16 in new[] { new UnicodeEncoding(false, true), new UnicodeEncoding(true, true) })
            {
                File.WriteAllBytes(path, [.. utf16.GetPreamble(), .. utf16.GetBytes(text)]);
                Assert.Equal("caf\u00E9", Assert.IsType<DenseSpec>(ModelDefinition.LoadSpec(path).Layers[0]).Name);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ALayersTypeMayComeAfterItsOtherFields()
    {
        var spec = ModelDefinition.ParseSpec("""{"name":"x","input":[1,28,28],"layers":[{"name":"fc","units":10,"type":"dense"}]}""", "test");
        Assert.Equal("fc/kernel", new ModelDefinition(spec).Parameters[0].Name);
    }

    [Fact]
    public void ResidualShapesMustMatch()
    {
        var spec = new ModelSpec("bad", [3, 8, 8],
        [
            new ResidualSpec([new Conv2dSpec(8, 3, 2, "same")]),
            new FlattenSpec(), new DenseSpec(10),
        ]);
        Assert.Contains("shortcut", Assert.Throws<ModelSpecException>(() => new ModelDefinition(spec)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConvGeometryOfSameStrideTwoPadsLikeTensorFlow()
    {
        // 24x24 input, 5x5 kernel, stride 2, same: out 12, total pad (11*2+5-24)=3 -> top 1, bottom 2.
        var g = ConvGeometry.Create(1, 32, 24, 24, 32, 5, 5, 2, true);
        Assert.Equal((12, 12, 1, 1), (g.OutHeight, g.OutWidth, g.PadTop, g.PadLeft));
    }

    [Fact]
    public void GeometriesThatNoBackendCanRunAreRefused()
    {
        var good = ConvGeometry.Create(2, 3, 8, 8, 4, 3, 3, 1, false);
        ConvGeometry.Validate(good);
        Assert.Contains("invalid convolution geometry", Assert.Throws<ArgumentException>(() => ConvGeometry.Validate(good with { PadTop = -1 })).Message, StringComparison.Ordinal);
        Assert.Contains("invalid convolution geometry", Assert.Throws<ArgumentException>(() => ConvGeometry.Validate(good with { Stride = 0 })).Message, StringComparison.Ordinal);
        // 70,000 images of 3x128x128 is 3.4 billion inputs: InputLength would wrap to a negative int.
        var huge = ConvGeometry.Create(70_000, 3, 128, 128, 4, 3, 3, 1, true);
        Assert.Contains("more than 2,147,483,647 elements (3,440,640,000 in", Assert.Throws<ArgumentException>(() => ConvGeometry.Validate(huge)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentNullException>(() => ConvGeometry.Validate(null!));

        var pool = PoolGeometry.Create(2, 3, 8, 8, 2, 2);
        PoolGeometry.Validate(pool);
        // A window past the input's edge (a hand-built geometry: Create would refuse it).
        Assert.Contains("invalid pooling geometry", Assert.Throws<ArgumentException>(() => PoolGeometry.Validate(pool with { OutHeight = 5 })).Message, StringComparison.Ordinal);
        Assert.Contains("invalid pooling geometry", Assert.Throws<ArgumentException>(() => PoolGeometry.Validate(pool with { Channels = 0 })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OnlyAWindowThatDoesNotFitAVectorGetsTheVectorNote()
    {
        ModelSpec After(LayerSpec pool) => new("x", [1, 28, 28], [new FlattenSpec(), new DenseSpec(10), pool, new DenseSpec(10)]);
        Assert.EndsWith("a 2x2 pool does not fit a 1x1 input (its input is a vector of 10 values, e.g. a dense layer's output; windows need an image)",
            Assert.Throws<ModelSpecException>(() => new ModelDefinition(After(new MaxPoolSpec(2)))).Message, StringComparison.Ordinal);
        // A window of 0 would not fit an image either: that message stands alone.
        Assert.EndsWith("pool size and stride must be positive, got 0 and 0",
            Assert.Throws<ModelSpecException>(() => new ModelDefinition(After(new MaxPoolSpec(0)))).Message, StringComparison.Ordinal);
    }
}
