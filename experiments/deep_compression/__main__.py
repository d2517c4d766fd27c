from experiments.deep_compression.run import main

main()
