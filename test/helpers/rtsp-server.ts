import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { ffmpegBinaries } from '../../src/media/ffmpeg-binaries.js';
import { freePort, waitForPort } from './ports.js';

/**
 * A real RTSP server (Debian's rtsp-server-perl, which .ci/run installs) on free loopback ports, fed by
 * ffmpeg publishing a clip in a loop. It serves RTP over UDP only. stop() and start() again keep the URL.
 */
export class RtspServer {
  private server?: ChildProcess;
  private publisher?: ChildProcess;

  private constructor(
    private readonly clip: string,
    private readonly clientPort: number,
    private readonly sourcePort: number,
    private readonly rtpPort: number,
  ) {}

  static async start(clip: string): Promise<RtspServer> {
    try {
      execFileSync('which', ['rtsp-server-perl']);
    } catch {
      throw new Error('rtsp-server-perl is not installed: apt-get install rtsp-server-perl (.ci/run does)');
    }
    const rtp = 20000 + Math.floor(Math.random() * 20000) * 2;
    const server = new RtspServer(clip, await freePort(), await freePort(), rtp);
    await server.resume();
    return server;
  }

  get url(): string {
    return `rtsp://127.0.0.1:${this.clientPort}/cam`;
  }

  /** (Re)starts the server and the publisher, and waits until the stream is being published. */
  async resume(): Promise<void> {
    this.server = spawn(
      'rtsp-server-perl',
      [
        '--clientport',
        String(this.clientPort),
        '--serverport',
        String(this.sourcePort),
        '--client_listen_address',
        '127.0.0.1',
        '--source_listen_address',
        '127.0.0.1',
        '--rtp_start_port',
        String(this.rtpPort),
        '--loglevel',
        '1',
      ],
      { stdio: 'ignore' },
    );
    await waitForPort(this.sourcePort);
    const { ffmpeg } = await ffmpegBinaries();
    this.publisher = spawn(
      ffmpeg.path,
      [
        '-loglevel',
        'error',
        '-re',
        '-stream_loop',
        '-1',
        '-i',
        this.clip,
        '-c',
        'copy',
        '-f',
        'rtsp',
        `rtsp://127.0.0.1:${this.sourcePort}/cam`,
      ],
      { stdio: 'ignore' },
    );
    await new Promise((r) => setTimeout(r, 800));
  }

  /** Kills the server and its publisher at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    const children = [this.publisher, this.server].filter((c): c is ChildProcess => c !== undefined);
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    this.server = undefined;
    this.publisher = undefined;
  }
}
