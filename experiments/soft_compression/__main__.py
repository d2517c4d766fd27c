from experiments.soft_compression.run import main

main()
