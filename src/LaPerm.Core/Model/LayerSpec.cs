using System.Text.Json.Serialization;

namespace LaPerm.Core.Model;

/// <summary>
/// One layer of a model description. These records are the JSON model-file schema too
/// (property "type" selects the layer; names are optional and generated as type + ordinal).
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(DenseSpec), "dense")]
[JsonDerivedType(typeof(Conv2dSpec), "conv2d")]
[JsonDerivedType(typeof(MaxPoolSpec), "maxpool")]
[JsonDerivedType(typeof(AvgPoolSpec), "avgpool")]
[JsonDerivedType(typeof(GlobalAvgPoolSpec), "globalavgpool")]
[JsonDerivedType(typeof(BatchNormSpec), "batchnorm")]
[JsonDerivedType(typeof(DropoutSpec), "dropout")]
[JsonDerivedType(typeof(ReluSpec), "relu")]
[JsonDerivedType(typeof(FlattenSpec), "flatten")]
[JsonDerivedType(typeof(ResidualSpec), "residual")]
public abstract record LayerSpec
{
    /// <summary>Optional explicit name; parameter names are "name/kernel", "name/bias", ...</summary>
    public string? Name { get; init; }
}

/// <summary>Fully connected: kernel [units, in] (one LaPerm row per output neuron).</summary>
public sealed record DenseSpec(int Units, bool Bias = true, float L2 = 0f) : LayerSpec;

/// <summary>2-D convolution, kernel [filters, cin, k, k]; padding "valid" or "same" (TensorFlow semantics).</summary>
public sealed record Conv2dSpec(int Filters, int Kernel, int Stride = 1, string Padding = "valid", bool Bias = true, float L2 = 0f) : LayerSpec;

/// <summary>Max pooling, "valid" padding; stride defaults to the pool size (Keras).</summary>
public sealed record MaxPoolSpec(int Pool = 2, int? Stride = null) : LayerSpec;

public sealed record AvgPoolSpec(int Pool = 2, int? Stride = null) : LayerSpec;

public sealed record GlobalAvgPoolSpec : LayerSpec;

/// <summary>Batch normalisation over channels (Keras defaults: momentum 0.99, epsilon 1e-3).</summary>
public sealed record BatchNormSpec(float Momentum = 0.99f, float Epsilon = 1e-3f) : LayerSpec;

public sealed record DropoutSpec(float Rate) : LayerSpec;

public sealed record ReluSpec : LayerSpec;

/// <summary>No-op on NCHW data (dense layers read any input as [N, features]); kept so model files read like Keras.</summary>
public sealed record FlattenSpec : LayerSpec;

/// <summary>y = main(x) + shortcut(x); an empty shortcut is the identity.</summary>
public sealed record ResidualSpec(IReadOnlyList<LayerSpec> Main, IReadOnlyList<LayerSpec>? Shortcut = null) : LayerSpec;

/// <summary>A whole model: input shape (channels, height, width) and its layers; the last layer's outputs are the class logits.</summary>
public sealed record ModelSpec(string Name, IReadOnlyList<int> Input, IReadOnlyList<LayerSpec> Layers);
