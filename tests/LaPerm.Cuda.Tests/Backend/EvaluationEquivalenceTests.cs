using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cpu;
using LaPerm.Cuda.Backend;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// Evaluation from the backend-resident data set (<see cref="Evaluation.Run"/> over
/// <see cref="IBackend.GatherRecords"/>) on a network trained for a few LaPerm steps: on the CPU
/// backend it gives exactly the loss and accuracy of the former host path (every batch filled on
/// the host by <see cref="Dataset.FillBatch"/> and uploaded), and on the device the same accuracy
/// and a loss within <see cref="TrainingEquivalenceTests.LossTolerance"/> relative (the logits
/// differ only by summation order). Batch 24 leaves a short last batch; the training-set slice
/// is the --train-eval-size case.
/// </summary>
public abstract class EvaluationEquivalenceTests
{
    protected abstract CudaBackend Open();

    private static readonly Lazy<DataSplit> Mnist = new(() => DataSource.Load("mnist", 96, 64));

    private const int Batch = 24;
    private const int TrainSlice = 50;

    /// <summary>The evaluation loop as it was before the data set lived on the backend.</summary>
    private static (double Loss, double Accuracy) HostPath(Network network, Dataset data, int batch, int count, int threads)
    {
        var backend = network.Backend;
        using var sums = backend.Allocate<float>(new Shape(2));
        var indices = new int[batch];
        for (int start = 0; start < count; start += batch)
        {
            int size = Math.Min(batch, count - start);
            var pass = network.GetPass(size);
            var images = new float[pass.Input.Length];
            var labels = new int[size];
            for (int i = 0; i < size; i++) indices[i] = start + i;
            data.FillBatch(indices.AsSpan(0, size), images, labels, null, 0, threads);
            backend.Upload<float>(images, pass.Input);
            backend.Upload<int>(labels, pass.Labels);
            pass.Forward(ForwardMode.Inference);
            pass.Loss(sums);
        }
        var result = new float[2];
        backend.Download(sums, result);
        return ((double)result[0] / count, (double)result[1] / count);
    }

    private static ModelSpec Model(string name) => name == "tinyconv" ? TrainingEquivalenceTests.TinyConv() : BuiltInModels.TryGet(name)!;

    [Theory]
    [InlineData("tinyconv")]
    [InlineData("f2")]
    public void EvaluationOfATrainedNetworkMatchesTheHostPathOnCpuAndAgreesOnTheDevice(string model)
    {
        var data = Mnist.Value;
        using var cpu = new CpuBackend(2);
        var options = new TrainingOptions
        {
            Model = model, Epochs = 1, Batch = 32, K = SyncSchedule.Constant(2), Seed = 11, Threads = 2,
            Reconnect = true, Optimizer = OptimizerKind.Adam, Augment = "mnist", LearningRate = 1e-3f,
        };
        var trainer = new Trainer(options, new ModelDefinition(Model(model)), data, cpu);
        trainer.Run();
        using var trained = trainer.Network!;

        using var onDevice = Open();
        using var deviceNetwork = new Network(new ModelDefinition(Model(model)), onDevice);
        var deviceTensors = deviceNetwork.CheckpointTensors().ToDictionary(t => t.Name, t => t.Tensor);
        foreach (var (name, _, tensor) in trained.CheckpointTensors())
        {
            var values = new float[tensor.Length];
            cpu.Download(tensor, values);
            onDevice.Upload<float>(values, deviceTensors[name]);
        }

        foreach (var (host, count) in new[] { (data.Test, data.Test.Count), (data.Train, TrainSlice) })
        {
            using var onCpuData = cpu.UploadDataset(host);
            using var onDeviceData = onDevice.UploadDataset(host);
            var expected = HostPath(trained, host, Batch, count, 2);
            var actual = Evaluation.Run(trained, onCpuData, Batch, count);
            Assert.True(double.IsFinite(expected.Loss) && expected.Accuracy is > 0 and <= 1, $"{model} on {host.Name}: got {expected}.");
            Assert.Equal(expected.Loss, actual.Loss);
            Assert.Equal(expected.Accuracy, actual.Accuracy);

            var device = Evaluation.Run(deviceNetwork, onDeviceData, Batch, count);
            Assert.Equal(expected.Accuracy, device.Accuracy);
            double relative = Math.Abs(device.Loss - expected.Loss) / Math.Abs(expected.Loss);
            Assert.True(relative <= TrainingEquivalenceTests.LossTolerance,
                $"{model} on {host.Name}: device loss {device.Loss} vs cpu {expected.Loss} (relative {relative:E2}).");
        }
    }
}

public sealed class EmuEvaluationEquivalenceTests : EvaluationEquivalenceTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuEvaluationEquivalenceTests : EvaluationEquivalenceTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.None);
}
