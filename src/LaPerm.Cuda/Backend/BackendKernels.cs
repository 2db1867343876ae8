using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

/// <summary>
/// Every kernel the backend launches, loaded once per device from cuda/kernels/*.cu
/// (PTX on <c>cuda</c>, the emulator library on <c>emu</c>).
/// </summary>
internal sealed class BackendKernels : IDisposable
{
    private readonly List<DeviceModule> _modules = [];

    public BackendKernels(Device device)
    {
        DeviceModule elementwise = Load(device, "elementwise.ptx");
        ScaleAdd = elementwise.GetKernel("scale_add_v1");
        Scale = elementwise.GetKernel("scale_v1");

        DeviceModule activation = Load(device, "activation.ptx");
        ReluForward = activation.GetKernel("relu_forward_v1");
        ReluBackward = activation.GetKernel("relu_backward_v1");

        DeviceModule dropout = Load(device, "dropout.ptx");
        DropoutForward = dropout.GetKernel("dropout_forward_v1");
        DropoutBackward = dropout.GetKernel("dropout_backward_v1");

        DeviceModule bias = Load(device, "bias.ptx");
        BiasAdd = bias.GetKernel("bias_add_v1");
        BiasGradient = bias.GetKernel("bias_gradient_v1");
        BiasGradientSums = bias.GetKernel("bias_gradient_v2_sums");
        BiasGradientTotal = bias.GetKernel("bias_gradient_v2_total");

        DeviceModule loss = Load(device, "loss.ptx");
        SoftmaxRows = loss.GetKernel("softmax_xent_rows_v1");
        SoftmaxTotal = loss.GetKernel("softmax_xent_total_v1");

        DeviceModule pool = Load(device, "pool.ptx");
        MaxPoolForward = pool.GetKernel("maxpool_forward_v1");
        MaxPoolBackward = pool.GetKernel("maxpool_backward_v1");
        AvgPoolForward = pool.GetKernel("avgpool_forward_v1");
        AvgPoolBackward = pool.GetKernel("avgpool_backward_v1");
        GlobalAvgPoolForward = pool.GetKernel("global_avgpool_forward_v1");
        GlobalAvgPoolBackward = pool.GetKernel("global_avgpool_backward_v1");

        DeviceModule norm = Load(device, "batchnorm.ptx");
        BatchNormTraining = norm.GetKernel("batchnorm_forward_training_v1");
        BatchNormInference = norm.GetKernel("batchnorm_forward_inference_v1");
        BatchNormBackward = norm.GetKernel("batchnorm_backward_v1");
        BatchNormTrainingSums = norm.GetKernel("batchnorm_forward_training_v2_sums");
        BatchNormTrainingSquares = norm.GetKernel("batchnorm_forward_training_v2_squares");
        BatchNormTrainingStatistics = norm.GetKernel("batchnorm_forward_training_v2_statistics");
        BatchNormTrainingOutput = norm.GetKernel("batchnorm_forward_training_v2_output");
        BatchNormBackwardSums = norm.GetKernel("batchnorm_backward_v2_sums");
        BatchNormBackwardTotals = norm.GetKernel("batchnorm_backward_v2_totals");
        BatchNormBackwardDx = norm.GetKernel("batchnorm_backward_v2_dx");

        DeviceModule im2col = Load(device, "im2col.ptx");
        Im2Col = im2col.GetKernel("im2col_v1");
        Col2Im = im2col.GetKernel("col2im_v1");

        DeviceModule conv = Load(device, "conv.ptx");
        ConvGatherOutput = conv.GetKernel("conv_gather_output_v1");
        ConvScatterOutput = conv.GetKernel("conv_scatter_output_v1");
        ConvPadImages = conv.GetKernel("conv_pad_images_v1");
        ConvCropImages = conv.GetKernel("conv_crop_images_v1");

        DeviceModule optimizer = Load(device, "optimizer.ptx");
        SgdMomentumMulti = optimizer.GetKernel("sgd_momentum_multi_v1");

        DeviceModule adam = Load(device, "adam.ptx");
        AdamMulti = adam.GetKernel("adam_multi_v2");

        DeviceModule step = Load(device, "step.ptx");
        StepBegin = step.GetKernel("step_begin_v1");
        StepGuardLoss = step.GetKernel("step_guard_loss_v1");
        StepGuardGradient = step.GetKernel("step_guard_gradient_v1");
        StepGuardRestore = step.GetKernel("step_guard_restore_v1");
        StepGuardCommit = step.GetKernel("step_guard_commit_v1");
    }

    private DeviceModule Load(Device device, string file)
    {
        DeviceModule module = device.LoadModule(file);
        _modules.Add(module);
        return module;
    }

    public Kernel ScaleAdd { get; }
    public Kernel Scale { get; }
    public Kernel ReluForward { get; }
    public Kernel ReluBackward { get; }
    public Kernel DropoutForward { get; }
    public Kernel DropoutBackward { get; }
    public Kernel BiasAdd { get; }
    public Kernel BiasGradient { get; }
    public Kernel BiasGradientSums { get; }
    public Kernel BiasGradientTotal { get; }
    public Kernel SoftmaxRows { get; }
    public Kernel SoftmaxTotal { get; }
    public Kernel MaxPoolForward { get; }
    public Kernel MaxPoolBackward { get; }
    public Kernel AvgPoolForward { get; }
    public Kernel AvgPoolBackward { get; }
    public Kernel GlobalAvgPoolForward { get; }
    public Kernel GlobalAvgPoolBackward { get; }
    public Kernel BatchNormTraining { get; }
    public Kernel BatchNormInference { get; }
    public Kernel BatchNormBackward { get; }
    public Kernel BatchNormTrainingSums { get; }
    public Kernel BatchNormTrainingSquares { get; }
    public Kernel BatchNormTrainingStatistics { get; }
    public Kernel BatchNormTrainingOutput { get; }
    public Kernel BatchNormBackwardSums { get; }
    public Kernel BatchNormBackwardTotals { get; }
    public Kernel BatchNormBackwardDx { get; }
    public Kernel Im2Col { get; }
    public Kernel Col2Im { get; }
    public Kernel ConvGatherOutput { get; }
    public Kernel ConvScatterOutput { get; }
    public Kernel ConvPadImages { get; }
    public Kernel ConvCropImages { get; }
    public Kernel SgdMomentumMulti { get; }
    public Kernel AdamMulti { get; }
    public Kernel StepBegin { get; }
    public Kernel StepGuardLoss { get; }
    public Kernel StepGuardGradient { get; }
    public Kernel StepGuardRestore { get; }
    public Kernel StepGuardCommit { get; }

    public void Dispose()
    {
        foreach (DeviceModule module in _modules) module.Dispose();
    }
}
