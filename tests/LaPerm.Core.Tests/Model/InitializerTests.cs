using LaPerm.Core.Model;

namespace LaPerm.Core.Tests.Model;

public sealed class InitializerTests
{
    [Fact]
    public void HeUniformKernelsAndBiasesStayWithinTheirFanInBoundAndFillIt()
    {
        var d = new ModelDefinition(BuiltInModels.LeNet300());
        var values = Initializer.Compute(d, InitOptions.HeUniform, 3);
        foreach (var p in d.Parameters)
        {
            double limit = Math.Sqrt(6.0 / p.FanIn);
            var v = values[p.Name];
            Assert.All(v, x => Assert.InRange(x, -limit, limit));
            // Uniform on [-l, l] (large tensors): the extremes come within 5 % of the bound; the mean is near 0.
            if (v.Length < 1000) continue;
            Assert.True(v.Max() > 0.95 * limit && v.Min() < -0.95 * limit, p.Name);
            Assert.InRange(v.Average(), -0.1 * limit, 0.1 * limit);
        }
        // Kernels: the inputs per output neuron. Biases: Keras' he_uniform on a 1-D tensor of n values, whose
        // fan-in is n (the authors' bias_initializer): 300 for dense1's bias, not the 784 inputs.
        Assert.Equal(784, d.Parameters.Single(p => p.Name == "dense1/kernel").FanIn);
        Assert.Equal(300, d.Parameters.Single(p => p.Name == "dense1/bias").FanIn);
        var conv7 = new ModelDefinition(BuiltInModels.Conv7());
        Assert.Equal(32, conv7.Parameters.Single(p => p.Name == "conv2/bias").FanIn);
        Assert.Equal(3 * 3 * 32, conv7.Parameters.Single(p => p.Name == "conv2/kernel").FanIn);
    }

    [Fact]
    public void SameSeedGivesIdenticalValuesAndAnotherSeedDoesNot()
    {
        var d = new ModelDefinition(BuiltInModels.Conv7());
        var a = Initializer.Compute(d, InitOptions.HeUniform, 42);
        var b = Initializer.Compute(d, InitOptions.HeUniform, 42);
        var c = Initializer.Compute(d, InitOptions.HeUniform, 43);
        foreach (var p in d.Parameters)
        {
            Assert.Equal(a[p.Name], b[p.Name]);
            Assert.NotEqual(a[p.Name], c[p.Name]);
        }
    }

    [Fact]
    public void SharedInitKeepsEachTensorWithItsOwnProbability()
    {
        var d = new ModelDefinition(BuiltInModels.F2());
        var values = Initializer.Compute(d, new InitOptions(0.03f, [1.0 / 15, 1.0 / 7, 1.0 / 3]), 9);
        double[] expected = [1.0 / 15, 1.0 / 7, 1.0 / 3];
        var kernels = d.Parameters.Where(p => p.Kind == ParameterKind.Kernel).ToList();
        for (int i = 0; i < kernels.Count; i++)
        {
            var v = values[kernels[i].Name];
            Assert.All(v, x => Assert.True(x == 0f || x == 0.03f));
            double kept = v.Count(x => x != 0f) / (double)v.Length;
            double sigma = Math.Sqrt(expected[i] * (1 - expected[i]) / v.Length);
            Assert.InRange(kept, expected[i] - 5 * sigma, expected[i] + 5 * sigma);
        }
    }

    [Fact]
    public void PruningKeepsQOnKernelsAtLeast80PercentOnTheInputLayerAndNeverTouchesOneDimensionalTensors()
    {
        var d = new ModelDefinition(BuiltInModels.Conv7());
        var values = Initializer.Compute(d, new InitOptions(Prune: 0.7), 5);
        foreach (var p in d.Parameters)
        {
            var v = values[p.Name];
            double kept = v.Count(x => x != 0f) / (double)v.Length;
            if (p.Kind != ParameterKind.Kernel) Assert.Equal(1.0, kept);
            else if (p.InInputLayer) Assert.InRange(kept, 0.8 - 0.1, 0.8 + 0.1); // 288 weights: 0.8 +- 4 sigma
            else Assert.InRange(kept, 0.3 - 0.05, 0.3 + 0.05);
        }
    }

    [Fact]
    public void ALightPruneKeepsMoreThan80PercentOfTheInputLayer()
    {
        // P = 0.1: q = 0.9 everywhere, the input layer's max(0.9, 0.8) included (235200 weights: sigma 0.0006).
        var d = new ModelDefinition(BuiltInModels.LeNet300());
        var v = Initializer.Compute(d, new InitOptions(Prune: 0.1), 5)["dense1/kernel"];
        Assert.InRange(v.Count(x => x != 0f) / (double)v.Length, 0.89, 0.91);
    }

    [Fact]
    public void ThePruneMaskIsIndependentOfTheValues()
    {
        // He-uniform values are symmetric about 0, so an independent mask keeps as many positive as negative ones.
        var d = new ModelDefinition(BuiltInModels.LeNet300());
        var v = Initializer.Compute(d, new InitOptions(Prune: 0.5), 5)["dense1/kernel"].Where(x => x != 0f).ToArray();
        Assert.InRange(v.Count(x => x > 0f) / (double)v.Length, 0.48, 0.52);
    }

    [Fact]
    public void ABiasIsKeptWithItsLayersKernelProbability()
    {
        var d = new ModelDefinition(BuiltInModels.LeNet300());
        var keep = Initializer.KeepOf(d, new InitOptions(0.05f, [0.2, 0.5, 0.9]));
        Assert.Equal((0.2, 0.5, 0.9), (keep["dense1/bias"], keep["dense2/bias"], keep["dense3/bias"]));
        var values = Initializer.Compute(d, new InitOptions(0.05f, [0.2, 0.5, 0.9]), 4)["dense1/bias"];
        Assert.InRange(values.Count(x => x != 0f) / (double)values.Length, 0.1, 0.3);   // 300 values: 0.2 +- 4 sigma
    }

    [Fact]
    public void BatchNormStartsAsTheIdentityGammaOneBetaZero()
    {
        var d = new ModelDefinition(new ModelSpec("bn", [1, 8, 8], [new Conv2dSpec(4, 3), new BatchNormSpec(), new FlattenSpec(), new DenseSpec(10)]));
        var values = Initializer.Compute(d, InitOptions.HeUniform, 2);
        var norms = d.Parameters.Where(p => p.Kind == ParameterKind.BatchNorm).ToList();
        Assert.Equal(2, norms.Count);
        foreach (var p in norms)
            Assert.All(values[p.Name], x => Assert.Equal(p.Name.EndsWith("/gamma", StringComparison.Ordinal) ? 1f : 0f, x));
    }

    [Fact]
    public void KeepListMustMatchTheKernelCount()
    {
        var d = new ModelDefinition(BuiltInModels.F2());
        Assert.Throws<ArgumentException>(() => Initializer.Compute(d, new InitOptions(0.03f, [0.5, 0.5]), 1));
    }

    [Fact]
    public void KeepProbabilitiesAreDescribedAsTheFractionsTheyWereGivenAs()
    {
        // The header and summary.json showed --keep 4/7 as 0.5714285714285714.
        Assert.Equal("shared:0.08 keep 4/7,1/3,1/15 pruned 0.2", new InitOptions(0.08f, [4.0 / 7, 1.0 / 3, 1.0 / 15], 0.2).Describe());
        Assert.Equal("shared:0.03 keep 1", new InitOptions(0.03f).Describe());
        Assert.Equal("0.123456789", InitOptions.Fraction(0.123456789));
        Assert.Equal("999/1000", InitOptions.Fraction(0.999));
        Assert.Equal("he-uniform", InitOptions.HeUniform.Describe());
    }
}
