namespace FhirSortie.Server.Storage.Sqlite;

/// <summary>
/// One gateway process per SQLite data directory. A second one on the same folder would run its own single writer and
/// its own audit journal beside the first's (each moves and deletes journal segments it believes its own), and migrate
/// the schema under it: SQLite means one node (several nodes share PostgreSQL). The lock is an exclusive lock on
/// <see cref="FileName"/> in the data directory, taken before the migrations and released when the dialect is disposed,
/// last of the process's storage. The operating system holds it (flock on Linux, a share mode on Windows) and drops it
/// when the process ends however it ends: a crashed or killed gateway leaves the file, never the lock.
/// The backup command does not take it: it reads while the gateway runs.
/// </summary>
public sealed class DataDirectoryLock : IDisposable
{
    public const string FileName = "fhirsortie.lock";

    /// <summary>The exit code of a start refused because another process holds the data directory.</summary>
    public const int Refused = 2;

    private readonly FileStream _file;

    private DataDirectoryLock(FileStream file) => _file = file;

    /// <summary>The lock, or null when another process (or another host in this one) holds it.</summary>
    public static DataDirectoryLock? TryTake(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, FileName);
        try
        {
            // FileShare.None is what takes the lock (.NET calls flock(LOCK_EX | LOCK_NB) on Unix).
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            // For the operator who finds the file: who held it last (a hint only; the lock is the open file, not this).
            file.SetLength(0);
            file.Write(System.Text.Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            file.Flush();
            return new DataDirectoryLock(file);
        }
        catch (IOException e) when (HeldElsewhere(e))
        {
            return null;
        }
    }

    /// <summary>
    /// Takes the lock for the gateway's SQLite store (nothing to take on PostgreSQL); false, with one line on
    /// <paramref name="error"/>, when the data directory is in use.
    /// </summary>
    public static bool Take(StorageDialect dialect, TextWriter error)
    {
        if (dialect is not SqliteDialect sqlite) return true;
        var folder = Path.GetDirectoryName(sqlite.DatabasePath)!;
        var taken = TryTake(folder);
        if (taken is null)
        {
            error.WriteLine($"The data directory {folder} is in use by another FhirSortie process (it holds {Path.Combine(folder, FileName)}): "
                + "one SQLite data directory serves one gateway; stop the other one first (several nodes need PostgreSQL).");
            return false;
        }
        sqlite.Hold(taken);
        return true;
    }

    // EWOULDBLOCK on Linux (11) and macOS (35); ERROR_SHARING_VIOLATION and ERROR_LOCK_VIOLATION on Windows.
    private static bool HeldElsewhere(IOException e) =>
        e.GetType() == typeof(IOException) && e.HResult is 11 or 35 or unchecked((int)0x80070020) or unchecked((int)0x80070021);

    public void Dispose() => _file.Dispose();
}
