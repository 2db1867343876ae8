// loss.cu: softmax cross-entropy with mean reduction, loss sum and correct count, written into
// device tensors so a training step never waits on the host (IBackend.SoftmaxCrossEntropy).
//
//   softmax_xent_rows_v1    one thread per example: arg-max (first max wins), softmax,
//                           dLogits = (softmax - onehot) / batch, and the example's loss and hit
//                           into per_example[2n], per_example[2n+1]
//   softmax_xent_total_v1   one block: totals[0] += sum of losses, totals[1] += sum of hits,
//                           summed in double in a fixed order (deterministic, no float atomics)
//
// Numerics: everything in double, with the exponential and logarithm of softmax_math.cuh, which
// are the CPU backend's (SoftmaxMath) operation for operation; the same sums in the same order.
// So the gradients, each example's loss and hit, and the arg-max are the CPU's bit for bit;
// only the totals are summed in another order (in double, then rounded to float once). A label
// outside [0, classes) cannot throw on the device: it makes that example's loss NaN, which the
// host sees at the next download.
#include "laperm/device.cuh"
#include "laperm/softmax_math.cuh"

#define LOSS_TOTAL_BLOCK 256

extern "C" __global__ void softmax_xent_rows_v1(int batch, int classes, const float* __restrict__ logits,
                                                const int* __restrict__ labels, float* __restrict__ dLogits,
                                                float* __restrict__ per_example) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= batch) {
        return;
    }
    const float* row = logits + (long long)n * classes;
    float* gradient = dLogits + (long long)n * classes;
    int best = 0;
    for (int j = 1; j < classes; ++j) {
        if (row[j] > row[best]) {
            best = j;
        }
    }
    const double max = (double)row[best];
    double sum = 0.0;
    for (int j = 0; j < classes; ++j) {
        sum += lp_exp_nonpositive((double)row[j] - max);
    }
    const int label = labels[n];
    const bool valid = label >= 0 && label < classes;
    for (int j = 0; j < classes; ++j) {
        const double p = lp_exp_nonpositive((double)row[j] - max) / sum;
        gradient[j] = (float)((p - (j == label ? 1.0 : 0.0)) / (double)batch);
    }
    per_example[2 * n] = valid ? (float)((max - (double)row[label]) + lp_log(sum)) : NAN;   // the CPU's order (large logits)
    // A row with a NaN logit (NaN sum and loss) is no hit, wherever the NaN sits (it never wins the arg-max).
    per_example[2 * n + 1] = best == label && sum == sum ? 1.0f : 0.0f;
}

// Launch: grid 1, block LOSS_TOTAL_BLOCK (exactly).
extern "C" __global__ void softmax_xent_total_v1(int batch, const float* __restrict__ per_example, float* __restrict__ totals) {
    __shared__ double loss[LOSS_TOTAL_BLOCK];
    __shared__ double hits[LOSS_TOTAL_BLOCK];
    double l = 0.0, h = 0.0;
    for (int n = threadIdx.x; n < batch; n += LOSS_TOTAL_BLOCK) {
        l += per_example[2 * n];
        h += per_example[2 * n + 1];
    }
    loss[threadIdx.x] = l;
    hits[threadIdx.x] = h;
    __syncthreads();
    for (int half = LOSS_TOTAL_BLOCK / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            loss[threadIdx.x] += loss[threadIdx.x + half];
            hits[threadIdx.x] += hits[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        totals[0] += (float)loss[0];
        totals[1] += (float)hits[0];
    }
}
