//! Progress reporting trait; the engine reports, the CLI renders.
