// One overload per argument count (0 to 14), identical in shape, so a launch needs no params array.
namespace LaPerm.Cuda.Runtime;

public sealed unsafe partial class Kernel
{
    /// <summary>Launches with 0 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream)
    {
        LaunchCore(grid, block, sharedBytes, stream, null, null, 0);
    }

    /// <summary>Launches with 1 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1)
        where T1 : unmanaged
    {
        void** args = stackalloc void*[1];
        int* sizes = stackalloc int[1];
        args[0] = &a1; sizes[0] = sizeof(T1);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 1);
    }

    /// <summary>Launches with 2 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2)
        where T1 : unmanaged
        where T2 : unmanaged
    {
        void** args = stackalloc void*[2];
        int* sizes = stackalloc int[2];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 2);
    }

    /// <summary>Launches with 3 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
    {
        void** args = stackalloc void*[3];
        int* sizes = stackalloc int[3];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 3);
    }

    /// <summary>Launches with 4 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
    {
        void** args = stackalloc void*[4];
        int* sizes = stackalloc int[4];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 4);
    }

    /// <summary>Launches with 5 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
    {
        void** args = stackalloc void*[5];
        int* sizes = stackalloc int[5];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 5);
    }

    /// <summary>Launches with 6 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
    {
        void** args = stackalloc void*[6];
        int* sizes = stackalloc int[6];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 6);
    }

    /// <summary>Launches with 7 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6, T7>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
        where T7 : unmanaged
    {
        void** args = stackalloc void*[7];
        int* sizes = stackalloc int[7];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        args[6] = &a7; sizes[6] = sizeof(T7);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 7);
    }

    /// <summary>Launches with 8 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6, T7, T8>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
        where T7 : unmanaged
        where T8 : unmanaged
    {
        void** args = stackalloc void*[8];
        int* sizes = stackalloc int[8];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        args[6] = &a7; sizes[6] = sizeof(T7);
        args[7] = &a8; sizes[7] = sizeof(T8);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 8);
    }

    /// <summary>Launches with 9 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6, T7, T8, T9>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
        where T7 : unmanaged
        where T8 : unmanaged
        where T9 : unmanaged
    {
        void** args = stackalloc void*[9];
        int* sizes = stackalloc int[9];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        args[6] = &a7; sizes[6] = sizeof(T7);
        args[7] = &a8; sizes[7] = sizeof(T8);
        args[8] = &a9; sizes[8] = sizeof(T9);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 9);
    }

    /// <summary>Launches with 10 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9, T10 a10)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
        where T7 : unmanaged
        where T8 : unmanaged
        where T9 : unmanaged
        where T10 : unmanaged
    {
        void** args = stackalloc void*[10];
        int* sizes = stackalloc int[10];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        args[6] = &a7; sizes[6] = sizeof(T7);
        args[7] = &a8; sizes[7] = sizeof(T8);
        args[8] = &a9; sizes[8] = sizeof(T9);
        args[9] = &a10; sizes[9] = sizeof(T10);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 10);
    }

    /// <summary>Launches with 11 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9, T10 a10, T11 a11)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
        where T7 : unmanaged
        where T8 : unmanaged
        where T9 : unmanaged
        where T10 : unmanaged
        where T11 : unmanaged
    {
        void** args = stackalloc void*[11];
        int* sizes = stackalloc int[11];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        args[6] = &a7; sizes[6] = sizeof(T7);
        args[7] = &a8; sizes[7] = sizeof(T8);
        args[8] = &a9; sizes[8] = sizeof(T9);
        args[9] = &a10; sizes[9] = sizeof(T10);
        args[10] = &a11; sizes[10] = sizeof(T11);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 11);
    }

    /// <summary>Launches with 12 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9, T10 a10, T11 a11, T12 a12)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
        where T7 : unmanaged
        where T8 : unmanaged
        where T9 : unmanaged
        where T10 : unmanaged
        where T11 : unmanaged
        where T12 : unmanaged
    {
        void** args = stackalloc void*[12];
        int* sizes = stackalloc int[12];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        args[6] = &a7; sizes[6] = sizeof(T7);
        args[7] = &a8; sizes[7] = sizeof(T8);
        args[8] = &a9; sizes[8] = sizeof(T9);
        args[9] = &a10; sizes[9] = sizeof(T10);
        args[10] = &a11; sizes[10] = sizeof(T11);
        args[11] = &a12; sizes[11] = sizeof(T12);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 12);
    }

    /// <summary>Launches with 13 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9, T10 a10, T11 a11, T12 a12, T13 a13)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
        where T7 : unmanaged
        where T8 : unmanaged
        where T9 : unmanaged
        where T10 : unmanaged
        where T11 : unmanaged
        where T12 : unmanaged
        where T13 : unmanaged
    {
        void** args = stackalloc void*[13];
        int* sizes = stackalloc int[13];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        args[6] = &a7; sizes[6] = sizeof(T7);
        args[7] = &a8; sizes[7] = sizeof(T8);
        args[8] = &a9; sizes[8] = sizeof(T9);
        args[9] = &a10; sizes[9] = sizeof(T10);
        args[10] = &a11; sizes[10] = sizeof(T11);
        args[11] = &a12; sizes[11] = sizeof(T12);
        args[12] = &a13; sizes[12] = sizeof(T13);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 13);
    }

    /// <summary>Launches with 14 argument(s); each value is passed by address, nothing is allocated.</summary>
    public void Launch<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14>(Dim3 grid, Dim3 block, uint sharedBytes, DeviceStream stream, T1 a1, T2 a2, T3 a3, T4 a4, T5 a5, T6 a6, T7 a7, T8 a8, T9 a9, T10 a10, T11 a11, T12 a12, T13 a13, T14 a14)
        where T1 : unmanaged
        where T2 : unmanaged
        where T3 : unmanaged
        where T4 : unmanaged
        where T5 : unmanaged
        where T6 : unmanaged
        where T7 : unmanaged
        where T8 : unmanaged
        where T9 : unmanaged
        where T10 : unmanaged
        where T11 : unmanaged
        where T12 : unmanaged
        where T13 : unmanaged
        where T14 : unmanaged
    {
        void** args = stackalloc void*[14];
        int* sizes = stackalloc int[14];
        args[0] = &a1; sizes[0] = sizeof(T1);
        args[1] = &a2; sizes[1] = sizeof(T2);
        args[2] = &a3; sizes[2] = sizeof(T3);
        args[3] = &a4; sizes[3] = sizeof(T4);
        args[4] = &a5; sizes[4] = sizeof(T5);
        args[5] = &a6; sizes[5] = sizeof(T6);
        args[6] = &a7; sizes[6] = sizeof(T7);
        args[7] = &a8; sizes[7] = sizeof(T8);
        args[8] = &a9; sizes[8] = sizeof(T9);
        args[9] = &a10; sizes[9] = sizeof(T10);
        args[10] = &a11; sizes[10] = sizeof(T11);
        args[11] = &a12; sizes[11] = sizeof(T12);
        args[12] = &a13; sizes[12] = sizeof(T13);
        args[13] = &a14; sizes[13] = sizeof(T14);
        LaunchCore(grid, block, sharedBytes, stream, args, sizes, 14);
    }

}
