// The benchmark job: does nothing, like qpo's built-in noop.
module.exports = async () => {};
