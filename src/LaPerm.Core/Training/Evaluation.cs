using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Core.Model;

namespace LaPerm.Core.Training;

/// <summary>Inference-mode loss and accuracy over the first N records of a data set.</summary>
public static class Evaluation
{
    public static (double Loss, double Accuracy) Run(Network network, Dataset data, int batch, int count, int threads)
    {
        if (count <= 0) return (double.NaN, double.NaN);
        var backend = network.Backend;
        using var sums = backend.Allocate<float>(new Shape(2));
        var indices = new int[batch];
        float[]? images = null;
        int[]? labels = null;
        for (int start = 0; start < count; start += batch)
        {
            int size = Math.Min(batch, count - start);
            var pass = network.GetPass(size);
            if (images is null || images.Length != pass.Input.Length)
            {
                images = new float[pass.Input.Length];
                labels = new int[size];
            }
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
}
